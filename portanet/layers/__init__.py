"""Layers (Keras names). Images are NCHW."""
from .base import ActivatedLayer, Layer, SymbolicTensor, WeightedLayer
from .conv import Conv2D, Convolution2D
from .core import Activation, Add, Concatenate, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

from ..errors import InvalidArgumentError as _InvalidArgumentError


def deserialize(entry):
    """A layer from {"class_name": ..., "config": ...}; only classes of portanet.layers are allowed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise _InvalidArgumentError(f"Expected a layer entry {{'class_name': ..., 'config': {{...}}}}. Received: {entry!r}")
    cls = globals().get(entry.get("class_name"))
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or cls in (Layer, ActivatedLayer, WeightedLayer):
        raise _InvalidArgumentError(f"Expected the name of a portanet layer class. Received: {entry.get('class_name')!r}")
    return cls.from_config(dict(entry["config"]))
