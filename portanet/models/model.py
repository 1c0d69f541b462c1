"""Models: `Sequential` and the functional `Model`, with Keras' compile / fit / evaluate / predict.

A model is a thin front over three parts (docs/architecture.md, "Graph, steps, trainer"): its
`graph` (the layers, shapes and parameters, and the passes through them), its `steps` (the pure
step functions, compiled once) and its `trainer` (the host loop). The front checks every argument
before anything changes, then hands over.
"""
import math
import os

from .. import callbacks as callbacks_module, losses, metrics as metrics_module, optimizers, random
from ..backend import get as _backend, place, transfer
from ..errors import InvalidArgumentError, InvalidTypeError, invalid
from ..layers import REGISTRY as LAYERS
from ..layers.base import Layer, SymbolicTensor, unique_name
from ..losses import Loss
from ..metrics import Metric
from ..optimizers import Optimizer
from ..training import data, feeding
from ..training.steps import Steps
from ..training.trainer import Trainer, memory_hint
from . import saving
from .graph import Graph


@LAYERS.register()
class Model(Layer):
    """A functional model: `Model(inputs=pn.Input((4,)), outputs=y)` for a graph of layer calls.

    A model is also a layer: called on a tensor of a functional model (`z = encoder(inputs)`) or
    put in a Sequential, it is one node whose forward and backward passes run its own graph, its
    weights the weights of its layers (docs/architecture.md, "Models as layers").

    `device_data_budget` (bytes; PORTANET_DEVICE_DATA_BUDGET, default 2 GiB; settable per model):
    `fit` puts training data of at most this size (as floats) on the device once and gathers
    each batch there; larger data is sent batch by batch.

    Training state: `optimizer`, `loss`, `metrics` (after `compile`); `opt_state` (the optimizer's
    state, once training started); `history` (of the last `fit`); `seed` (of the weights and of
    dropout); `initial_epoch` (the epochs trained so far: 0, or those a loaded checkpoint had);
    `stop_training` (set by callbacks).
    """

    device_data_budget = feeding.budget_from_environment()
    summary_shows_input = True  # Keras shows a functional model's InputLayer, not a Sequential's

    def __init__(self, inputs: SymbolicTensor | None = None, outputs: SymbolicTensor | None = None,
                 name: str | None = None, trainable: bool = True):
        # not Layer.__init__: a model's shapes and weights are its graph's
        self.name = name or unique_name("functional" if type(self) is Model else "sequential")
        self.trainable = trainable
        self.graph = None
        self.optimizer = self.loss = None
        self.metrics, self.jit_compile = [], True
        self.opt_state = self.history = self.seed = None
        self.initial_epoch, self.stop_training, self.warned_not_finite = 0, False, False
        self.steps, self.trainer = Steps(self), Trainer(self)
        if inputs is not None or outputs is not None:
            self.graph = Graph(inputs, outputs)

    # ----- the graph -----------------------------------------------------------------------------
    @property
    def layers(self):
        """Every layer once, in call order (reused layers appear once)."""
        return self.graph.layers if self.graph is not None else []

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise invalid("name", f"one of {[layer.name for layer in self.layers]}", name)

    @property
    def built(self):
        return self.graph is not None and all(layer.built for layer in self.layers)

    @property
    def input_shape(self):
        return self.graph.input_shape if self.graph is not None else None

    @property
    def output_shape(self):
        return self.graph.output_shape if self.graph is not None else None

    def build(self, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Check `input_shape` (without the batch axis) against the model's and draw the weights
        (if they are not yet); returns the output shape. A Sequential without an Input builds its
        layers for `input_shape`."""
        if not self.built:
            if input_shape is None:
                raise invalid("input_shape", "the shape of one example (without the batch axis)", input_shape)
            self._build_from_shape(tuple(input_shape))
        elif input_shape is not None and tuple(input_shape) != tuple(self.input_shape):
            raise invalid("input_shape", f"{tuple(self.input_shape)}, this model's input shape", tuple(input_shape))
        if not self.graph.has_params:
            self._init_params()
        return self.output_shape

    def _build_from_shape(self, shape):
        raise invalid("x", "data for a model built from portanet.Input", shape)

    def _require_built(self, what):
        if not self.built:
            raise InvalidArgumentError(
                f"The model '{self.name}' has no input shape yet, so `{what}` cannot run. Give it a "
                f"portanet.Input(shape), call it on data, or call model.build(input_shape) first.")

    # ----- parameters ----------------------------------------------------------------------------
    def _init_params(self, seed=None):
        self.seed = random.next_seed() if seed is None else seed
        self.graph.init_params(self.seed)

    def _ensure_params(self):
        """Draw the weights on first use; move them (and the optimizer state) to the current
        backend if it changed since."""
        if not self.graph.has_params:
            self._init_params()
        source = self.graph.to_current_backend()
        if source is not None and self.opt_state is not None:
            self.opt_state = transfer(self.opt_state, source)

    @property
    def params(self):
        """{layer name: {param name: array}}, on the current backend (drawn on first use)."""
        self._require_built("params")
        self._ensure_params()
        return self.graph.params

    @params.setter
    def params(self, value):
        self._require_built("params")
        self.graph.params = value
        self.graph.backend_name = _backend().name

    def count_params(self, trainable_only: bool = False) -> int:
        self._require_built("count_params")
        return 0 if trainable_only and not self.trainable else self.graph.count_params(trainable_only)

    def get_weights(self) -> list:
        """Every layer's arrays as NumPy arrays: kernel then bias, layer by layer (Keras' order)."""
        self._require_built("get_weights")
        self._ensure_params()
        return self.graph.get_weights()

    def set_weights(self, weights: list) -> None:
        """Set every layer's arrays (as `get_weights` lists them); shapes are checked first."""
        self._require_built("set_weights")
        self._ensure_params()
        self.graph.set_weights(weights)

    @property
    def learning_rate(self) -> float:
        """The optimizer's current learning rate (a float)."""
        self._require_compiled("learning_rate")
        state = self.opt_state if self.opt_state is not None else self.optimizer.init(self.graph.trainable_params())
        return float(_backend().to_numpy(self.optimizer.learning_rate_value(state)))

    @learning_rate.setter
    def learning_rate(self, value):
        self._require_compiled("learning_rate")
        state = self.opt_state if self.opt_state is not None else self.optimizer.init(
            self.graph.trainable_params(self.params))
        self.opt_state = place(self.optimizer.with_learning_rate(state, value))

    # ----- compile, fit, evaluate, predict ------------------------------------------------------
    def compile(self, optimizer: str | dict | Optimizer = "rmsprop", loss: str | dict | Loss | None = None,
                metrics: list | str | Metric | None = None, jit_compile: bool | str = "auto") -> None:
        """Choose the optimizer, the loss and the metrics, as in Keras.

        Args:
            optimizer: a name ("adam", "sgd", ... with Keras' defaults), a config dict, or a
                portanet.optimizers.Optimizer.
            loss: a name ("sparse_categorical_crossentropy", "mse", ...) or a portanet.losses.Loss.
            metrics: a list of names ("accuracy", "precision", ...) or portanet.metrics.Metric.
            jit_compile: "auto" or True compiles the steps where the backend can (JAX with XLA,
                CuPy as CUDA graphs); False runs them op by op.
        """
        if jit_compile not in ("auto", True, False):
            raise invalid("jit_compile", "'auto', True or False", jit_compile)
        optimizer = optimizers.get(optimizer)
        if loss is None:
            raise invalid("loss", "a loss name or portanet.losses.Loss", loss, InvalidTypeError)
        loss = losses.get(loss)
        metrics = [] if metrics is None else [metrics] if isinstance(metrics, (str, metrics_module.Metric)) else metrics
        if not isinstance(metrics, (list, tuple)):
            raise invalid("metrics", "a list of metric names or Metric objects", metrics, InvalidTypeError)
        metrics = [metrics_module.get(m, loss) for m in metrics]
        names = [m.name for m in metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise invalid("metrics", "distinct metrics", names)
        self._check_loss_fits_output(loss)
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics
        self.jit_compile = jit_compile is not False
        self.opt_state = None

    def _check_loss_fits_output(self, loss):
        if loss is None or not self.built:
            return
        out = self.output_shape
        if loss.fused_activation == "softmax" and len(out) > 1:
            raise invalid("loss", f"a model whose output is (None, classes) for {loss.name}; this model's "
                          f"output is {(None, *out)}: add a Flatten layer before the first Dense", loss.name)
        if loss.label_kind == "sparse" and out[-1] < 2:
            raise invalid("loss", f"a loss for a single output such as binary_crossentropy or mse (the model "
                          f"has output shape {(None, *out)})", loss.name)

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise InvalidArgumentError(
                f"You must call `compile()` before `{what}`: model '{self.name}' has no optimizer and loss yet.")

    def _prepare(self, x, name="x"):
        """Validate host features (the argument called `name`), building a Sequential on its first data."""
        x = data.as_array(x, name)
        data.check_features(x, None, name)
        if not self.built:
            self._build_from_shape(tuple(x.shape[1:]))
        data.check_features(x, self.input_shape, name)
        self._ensure_params()
        return x

    def _prepare_xy(self, x, y, check_finite=True, names=("x", "y")):
        x = self._prepare(x, names[0])
        y = data.as_array(y, names[1])
        data.check_same_length(x, y, names)
        y = data.check_labels(y, self.loss, self.output_shape, names[1])
        if check_finite:
            data.check_finite(x, names[0])
            data.check_finite(y, names[1])
        return x, y

    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1, verbose: int | str = "auto",
            callbacks: list | None = None, validation_split: float = 0.0, validation_data: tuple | None = None,
            shuffle: bool = True, initial_epoch: int = 0, seed: int | None = None,
            check_finite: bool = True) -> callbacks_module.History:
        """Train on (x, y) for `epochs` epochs, as Keras' `fit`; everything is checked first.

        Args:
            x, y: host arrays (NumPy, lists, or DLPack arrays), examples along axis 0.
            batch_size: examples per step (default 32); the last batch of an epoch may be smaller.
            epochs: train until this epoch (counting from `initial_epoch`).
            verbose: "auto" or 1 (a progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: a list of portanet.callbacks.Callback.
            validation_split: the fraction of (x, y) held out for validation: its last examples,
                taken before shuffling (Keras' rule).
            validation_data: (x_val, y_val), evaluated after every epoch (instead of a split).
            shuffle: shuffle the examples every epoch (seeded by `seed` and the epoch).
            initial_epoch: the epoch to start from (resuming, e.g. from `model.initial_epoch`).
            seed: of the shuffling and of dropout (default: the model's weights seed).
            check_finite: refuse data holding NaN or Inf (naming the first bad example).

        Returns:
            The History: `history.history["loss"]`, `["val_loss"]`, each metric, per epoch.
        """
        self._require_compiled("fit()")
        batch_size = data.check_batch_size(batch_size)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise invalid(name, "a non-negative int", value)
        verbose = data.check_verbose(verbose)
        split = data.check_validation_split(validation_split)
        x, y = self._prepare_xy(x, y, check_finite)
        self._check_loss_fits_output(self.loss)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise invalid("validation_data", "a tuple (x_val, y_val)", type(validation_data).__name__,
                              InvalidTypeError)
            val = self._prepare_xy(*validation_data, check_finite, names=("validation_data[0]", "validation_data[1]"))
            train = (x, y)
        else:
            train, val = data.split_tail(x, y, split)
        callback_list = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose, epochs=epochs,
                                                      steps=math.ceil(len(train[0]) / batch_size))
        if seed is None:
            seed = self.seed if self.seed is not None else data.new_seed()
        with memory_hint(batch_size):
            return self.trainer.fit(train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list)

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose: int | str = "auto",
                 return_dict: bool = False, check_finite: bool = True) -> float | list | dict:
        """Loss and metrics on (x, y), in batches of `batch_size` (default 32), in inference mode.

        Returns [loss, *metrics] (a float without metrics), or a dict with `return_dict`;
        `verbose` prints them."""
        self._require_compiled("evaluate()")
        batch_size = data.check_batch_size(batch_size)
        verbose = data.check_verbose(verbose)
        x, y = self._prepare_xy(x, y, check_finite)
        with memory_hint(batch_size):
            logs = self.trainer.evaluate(x, y, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size: int | None = None, verbose: int | str = 0):
        """The model's outputs for x as a NumPy array, in batches of `batch_size` (default 32),
        in inference mode (dropout off)."""
        batch_size = data.check_batch_size(batch_size)
        x = self._prepare(x)
        with memory_hint(batch_size):
            return self.trainer.predict(x, batch_size)

    # ----- the layer contract, for a model used as a layer --------------------------------------
    # (called on an array already on the backend, Layer.__call__ runs the forward pass)
    @property
    def declared_input_shape(self):
        return self.input_shape

    @property
    def needs_key(self):
        return any(layer.needs_key for layer in self.layers)

    @property
    def has_weights(self):
        return any(layer.has_weights for layer in self.layers)

    @property
    def weights_drawn(self):
        return self.graph is not None and self.graph.has_params

    @property
    def num_weights(self):
        return self.graph.num_weights

    def init(self, key) -> dict:
        """Fresh weights of every layer, drawn from `key`."""
        return self.graph.draw(key)

    def forward(self, params, x, training=False, key=None):
        return self.graph.forward(params, x, training, key)

    def backward(self, params, caches, dy):
        return self.graph.backward(params, caches, dy, need_dx=self.needs_input_grad)

    def trainable_params(self, params):
        return self.graph.trainable_params(params) if self.trainable else {}

    def trainable_flags(self):
        return self.trainable, self.graph.trainable_flags()

    def state_updates(self, params, caches):
        return self.graph.state_updates(params, caches)

    def penalty(self, params):
        return self.graph.penalty(params)

    def penalty_grads(self, params):
        return self.graph.penalty_grads(params)

    def check_weights(self, weights: list) -> None:
        self.graph.check_weights(weights)

    # ----- summary, config, saving ---------------------------------------------------------------
    def summary(self, print_fn=print) -> None:
        """Layer names, types, output shapes and parameter counts, as Keras prints them."""
        self._require_built("summary")
        self.graph.summary(self.name, print_fn, show_input=self.summary_shows_input)

    def get_config(self) -> dict:
        return {"name": self.name, **(self.graph.get_config() if self.graph is not None else {})}

    @classmethod
    def from_config(cls, config):
        """The model `get_config` described, with new layers (weights not yet drawn)."""
        model = cls(name=config.get("name"))
        model.graph = Graph.from_config(config)
        return model

    def save(self, filepath: str | os.PathLike, include_optimizer: bool = True) -> None:
        """Write the architecture, the weights, the compile settings and (with `include_optimizer`)
        the optimizer state and training position to one safetensors file, atomically."""
        self._require_built("save")
        saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        self._require_built("save_weights")
        saving.save_model(self, filepath, include_optimizer=False, weights_only=True)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Load weights saved from a model of the same architecture (layers matched by position)."""
        self._require_built("load_weights")
        saving.load_weights(self, filepath)


def load_model(filepath: str | os.PathLike, compile: bool = True) -> Model:
    """The model saved at `filepath`, on the current backend, whichever backend saved it: its
    architecture, weights and (with `compile`) compile settings and optimizer state."""
    config, compiled, tensors, metadata = saving.read_model(filepath)
    model = LAYERS.deserialize(config)
    model._init_params(seed=0)
    if compile and compiled is not None:
        model.compile(optimizer=compiled["optimizer"], loss=compiled["loss"],
                      metrics=[metrics_module.get(m, losses.get(compiled["loss"])) for m in compiled["metrics"]])
    saving.restore(model, tensors, metadata, filepath)
    return model
