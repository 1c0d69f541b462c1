"""portanet: Keras-style neural networks with hand-written backprop on any Array API backend.

    import portanet as pn
    model = pn.Sequential([pn.Input((784,)), pn.layers.Dense(40, activation="relu"),
                           pn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=50)
"""
from . import (activations, backend, callbacks, config, data, datasets, distribution, initializers, layers, losses,
               metrics, models, optimizers, random, regularizers, schedules, testing)
from ._version import __version__
from .backend import floatx, set_floatx
from .errors import BackendUnavailableError, DeviceMemoryError, InvalidArgumentError, InvalidTypeError, PortanetError
from .io import ModelFileError
from .layers import Input
from .models import Model, Sequential, load_model
from .random import set_seed

backend._init_from_environment()
