"""Models: `Sequential` and the functional `Model`, with Keras' compile / fit / evaluate / predict.

A model is a thin front over three parts (docs/architecture.md, "Graph, steps, trainer"): its
`graph` (the layers, shapes and parameters, and the passes through them), its `steps` (the pure
step functions, compiled once) and its `trainer` (the host loop). The front checks every argument
before anything changes, then hands over.
"""
import json
import os

from .. import random
from ..backend import get as _backend, place, transfer
from ..errors import InvalidArgumentError, InvalidTypeError, invalid
from ..layers import REGISTRY as LAYERS
from ..layers.base import Layer, SymbolicTensor, unique_name
from ..training import heads as heads_module
from ..training.steps import Steps
from ..training.trainer import Trainer
from . import saving
from .fitting import Fitting
from .graph import Graph, current_placement


@LAYERS.register()
class Model(Fitting, Layer):
    """A functional model: `Model(inputs=pn.Input((4,)), outputs=y)` for a graph of layer calls;
    `Model(inputs=[a, b], outputs=[y1, y2])` for several inputs and outputs.

    A model is also a layer: called on a tensor of a functional model (`z = encoder(inputs)`) or
    put in a Sequential, it is one node whose forward and backward passes run its own graph, its
    weights the weights of its layers (docs/architecture.md, "Models as layers").

    `device_data_budget` (bytes; default None: PORTANET_DEVICE_DATA_BUDGET, else 2 GiB; settable per model):
    `fit` puts training data of at most this size (as floats) on the device once and gathers
    each batch there; larger data is sent batch by batch.

    Training state: `optimizer`, `loss`, `metrics`, `heads` (each output's loss and metrics,
    after `compile`); `opt_state` (the optimizer's
    state, once training started); `history` (of the last `fit`); `seed` (of the weights and of
    dropout); `initial_epoch` (the epochs trained so far: 0, or those a loaded checkpoint had);
    `stop_training` (set by callbacks).
    """

    device_data_budget = None   # bytes; None: PORTANET_DEVICE_DATA_BUDGET's (read at each fit)
    summary_shows_input = True  # Keras shows a functional model's InputLayer, not a Sequential's

    def __init__(self, inputs: SymbolicTensor | list | None = None, outputs: SymbolicTensor | list | None = None,
                 name: str | None = None, trainable: bool = True):
        # not Layer.__init__: a model's shapes and weights are its graph's
        if hasattr(self, "call"):
            raise InvalidTypeError(
                f"{type(self).__name__} subclasses Model with Keras' `call`: portanet builds a model from its "
                f"layer calls, not from a method run on tensors. Write the body of `call` as a function of "
                f"pn.Input tensors and return pn.Model(inputs, outputs) (the functional API), or use "
                f"pn.Sequential; a layer of your own computing something new: docs/custom_layers.md.")
        self.name = name or unique_name("functional" if type(self) is Model else "sequential")
        self.trainable = trainable
        self.graph = None
        self.optimizer = self.loss = self.heads = None
        self.metrics, self.jit_compile = [], True
        self.opt_state = self.history = self.seed = None
        self.initial_epoch, self.stop_training, self.warned_not_finite = 0, False, False
        self.batches_trained = 0  # train_on_batch calls: each draws its own dropout masks
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
        """The shape of one example (a list of shapes for several inputs)."""
        return self.graph.input_shape if self.graph is not None else None

    @property
    def output_shape(self):
        return self.graph.output_shape if self.graph is not None else None

    @property
    def input_names(self):
        return self.graph.input_names if self.graph is not None else []

    @property
    def output_names(self):
        """The outputs' layer names (Keras' keys for per-output losses, metrics and logs)."""
        if self.graph is not None:
            return self.graph.output_names
        return [self.layers[-1].name] if self.layers else ["output"]

    @property
    def multi_input(self):
        return self.graph is not None and len(self.graph.input_layers) > 1

    def build(self, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Check `input_shape` (without the batch axis) against the model's and draw the weights
        (if they are not yet); returns the output shape. A Sequential without an Input builds its
        layers for `input_shape`."""
        if not self.built:
            if input_shape is None:
                raise invalid("input_shape", "the shape of one example (without the batch axis)", input_shape)
            self._build_from_shape(tuple(input_shape))
        elif input_shape is not None and _shapes(input_shape) != _shapes(self.input_shape):
            raise invalid("input_shape", f"{self.input_shape}, this model's input shape", input_shape)
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
        self.graph.placement = current_placement()

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

    # ----- the layer contract, for a model used as a layer --------------------------------------
    def __call__(self, inputs, training=False):
        if self.graph is not None and len(self.graph.outputs) > 1:
            raise invalid("inputs", f"a model with one output to call as a layer ('{self.name}' has "
                          f"{len(self.graph.outputs)}: build the larger model from its layers' outputs)", self.name)
        return super().__call__(inputs, training)

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
        """The architecture: the inputs, every layer's config, the layer calls, the outputs."""
        return {"name": self.name, **(self.graph.get_config() if self.graph is not None else {})}

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON text (`portanet.models.model_from_json` rebuilds it)."""
        return json.dumps(LAYERS.serialize(self), **kwargs)

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

    def load_checkpoint(self, filepath: str | os.PathLike) -> None:
        """Load the weights, the optimizer state and the training position (seed, epochs done)
        saved by `save` into this compiled model of the same architecture, to resume training."""
        self._require_built("load_checkpoint")
        self._require_compiled("load_checkpoint")
        self._ensure_params()
        saving.load_checkpoint(self, filepath)


def load_model(filepath: str | os.PathLike, compile: bool = True) -> Model:
    """The model saved at `filepath`, on the current backend, whichever backend saved it: its
    architecture, weights and (with `compile`) compile settings and optimizer state."""
    config, compiled, tensors, metadata = saving.read_model(filepath)
    model = LAYERS.deserialize(config)
    model._init_params(seed=0)
    if compile and compiled is not None:
        model.compile(optimizer=compiled["optimizer"], **heads_module.deserialize(compiled))
    saving.restore(model, tensors, metadata, filepath)
    return model


def _shapes(shape):
    """A shape, or a list of shapes, as tuples (to compare)."""
    return [tuple(s) for s in shape] if shape and isinstance(shape[0], (list, tuple)) else tuple(shape)
