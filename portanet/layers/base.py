"""The layer contract: configuration plus pure functions over a dict of arrays
(docs/architecture.md, "The layer contract").

    out_shape = layer.build(in_shape)                  # shapes without the batch axis; validates
    params    = layer.init(key)                        # dict[str, array]; {} without parameters
    y, cache  = layer.forward(params, x, training=False, key=None)
    dx, grads = layer.backward(params, cache, dy)      # grads has the keys of params

Called on a `SymbolicTensor` (from `portanet.Input`), a layer records a node of a functional
model instead of computing anything. Called on an array, it computes (building and initialising
itself on first use), like a Keras layer.
"""
import itertools
import math

from .. import activations, initializers, random, regularizers
from ..backend import get as _backend
from ..errors import InvalidArgumentError, InvalidTypeError, check_positive_int, invalid
from ..registry import Registry, snake_case

# the types of the arguments every weighted layer takes
ActivationArg = str | dict | activations.Activation | None
InitializerArg = str | dict | initializers.Initializer
RegularizerArg = str | dict | regularizers.Regularizer | None
Shape = tuple[int, ...]

_name_counts = {}
_eager_keys = itertools.count()


def unique_name(base):
    """"dense", then "dense_1", "dense_2", ... (Keras' default layer names)."""
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class SymbolicTensor:
    """A placeholder for a layer's output in a functional model: its shape (without batch)."""

    def __init__(self, shape, layer, inputs=()):
        self.shape = tuple(shape)
        self.layer = layer
        self.inputs = list(inputs)

    def __repr__(self):
        return f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.layer.name}>"


class Layer:
    """Base class of every layer (see the module docstring for the contract).

    Every layer's constructor passes its `**kwargs` here.

    Args:
        name: the layer's name, a non-empty string without "/". Default: the class name in snake
            case, numbered from the second layer on ("dense", "dense_1", ...).
        input_shape: the shape of one example (no batch axis), declared on the first layer of a
            `Sequential` without `Input`. Default None.
        input_dim: a positive int, short for `input_shape=(input_dim,)`. Default None.
        trainable: whether optimizers update the layer's weights. Default True.
    """
    multi_input = False       # Add, Concatenate take a list of inputs
    needs_key = False         # Dropout draws random numbers in training
    needs_input_grad = True   # a graph sets it, for each call, to whether anything reads dL/dx
    non_trainable = ()        # names of parameters no optimizer updates (BatchNormalization's statistics)

    def __init__(self, name: str | None = None, input_shape: Shape | None = None, input_dim: int | None = None,
                 trainable: bool = True):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise invalid("name", "a non-empty string without '/'", name)
        if hasattr(self, "call") and type(self).forward is Layer.forward:
            raise InvalidTypeError(
                f"{type(self).__name__} defines Keras' `call`; a portanet layer defines "
                f"`forward(params, x, training, key) -> (y, cache)` and `backward(params, cache, dy) -> (dx, grads)` "
                f"(its gradient by hand), or is composed from existing layers as a functional Model used as a layer. "
                f"docs/custom_layers.md shows both.")
        self.name = name or unique_name(snake_case(type(self).__name__))
        if input_dim is not None:
            input_shape = (check_positive_int("input_dim", input_dim),)
        self.declared_input_shape = tuple(input_shape) if input_shape is not None else None
        self.trainable = trainable
        self.input_shape = self.output_shape = None
        self.params = {}

    # ----- configuration and shapes -------------------------------------------------------------
    @property
    def built(self):
        return self.output_shape is not None

    def build(self, input_shape: Shape | list[Shape]) -> Shape:
        """Validate the configuration against `input_shape` (no batch axis; a list of shapes for a
        layer of several inputs). A built layer accepts only the shape it was built for.

        Returns:
            The output shape (no batch axis).
        """
        if self.multi_input:
            input_shape = [tuple(s) for s in input_shape]
        else:
            input_shape = tuple(input_shape)
        if self.built and input_shape != self.input_shape:
            raise InvalidArgumentError(
                f"Layer '{self.name}' was built for input shape {self.input_shape} and cannot be "
                f"reused on another. Expected input_shape={self.input_shape}. Received: input_shape={input_shape}")
        output_shape = tuple(self.compute_output_shape(input_shape))
        self.input_shape, self.output_shape = input_shape, output_shape
        return output_shape

    def compute_output_shape(self, input_shape):
        return input_shape

    def param_specs(self):
        """{name: (shape, initializer, regularizer)} after build, in get_weights order."""
        return {}

    # ----- weights: what a graph asks of any layer (a model used as a layer answers too) --------
    @property
    def has_weights(self):
        return bool(self.param_specs())

    @property
    def weights_drawn(self):
        return bool(self.params) or not self.param_specs()

    @property
    def num_weights(self):
        """How many arrays get_weights returns."""
        return len(self.param_specs())

    def count_params(self, trainable_only=False) -> int:
        """The number of scalars in the layer's weights (with `trainable_only`, in those an
        optimizer updates)."""
        if trainable_only and not self.trainable:
            return 0
        return sum(math.prod(shape) for name, (shape, _, _) in self.param_specs().items()
                   if not (trainable_only and name in self.non_trainable))

    def trainable_params(self, params):
        """The entries of `params` an optimizer updates."""
        return {k: v for k, v in params.items() if k not in self.non_trainable} if self.trainable else {}

    def trainable_flags(self):
        return self.trainable

    def state_updates(self, params, cache):
        """{name: new value} of non-trainable parameters after a training forward pass (moving
        statistics), from its cache; {} for most layers."""
        return {}

    def init(self, key) -> dict:
        """Fresh parameters drawn from `key` with each parameter's initializer."""
        specs = self.param_specs()
        if not specs:
            return {}
        keys = random.split(key, len(specs))
        dtype = _backend().float_dtype()
        return {name: init(keys[i, ...], shape, dtype)
                for i, (name, (shape, init, _)) in enumerate(specs.items())}

    # ----- computation ---------------------------------------------------------------------------
    def forward(self, params: dict, x, training: bool = False, key=None) -> tuple:
        """The forward pass, pure: `x` (batch, *input_shape) (a list for several inputs) with
        `params`; `key` is a random key in training for layers with `needs_key`.

        Returns:
            `(y, cache)`: the output and whatever `backward` needs.
        """
        raise NotImplementedError

    def backward(self, params: dict, cache, dy) -> tuple:
        """The backward pass, pure: dL/dy -> dL/dx through the `cache` of `forward`.

        Returns:
            `(dx, grads)`: dL/dx (None where `needs_input_grad` is False) and {name: dL/dparam}.
        """
        raise NotImplementedError

    def penalty(self, params):
        """The weight penalty this layer adds to the loss (0.0 without regularizers)."""
        total = 0.0
        for name, (_, _, regularizer) in self.param_specs().items():
            if regularizer is not None:
                total = total + regularizer.penalty(params[name])
        return total

    def penalty_grads(self, params):
        """{name: gradient of the penalty} of the regularized parameters."""
        return {name: regularizer.gradient(params[name])
                for name, (_, _, regularizer) in self.param_specs().items() if regularizer is not None}

    def __call__(self, inputs, training=False):
        """On a `SymbolicTensor` (or a list of them), a node of a functional model: returns the
        output `SymbolicTensor`. On an array, the output array (the layer is built and its
        weights drawn on first use)."""
        if isinstance(inputs, SymbolicTensor) or (
                isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, SymbolicTensor) for t in inputs)):
            tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if self.multi_input != isinstance(inputs, (list, tuple)):
                expected = "a list of tensors" if self.multi_input else "one tensor"
                raise invalid("inputs", f"{expected} for layer '{self.name}'", inputs, InvalidTypeError)
            shape = self.build([t.shape for t in tensors] if self.multi_input else tensors[0].shape)
            return SymbolicTensor(shape, self, tensors)
        # eager call on arrays
        xs = list(inputs) if self.multi_input else [inputs]
        if not self.built:
            self.build([x.shape[1:] for x in xs] if self.multi_input else xs[0].shape[1:])
        if not self.weights_drawn:
            self.params = self.init(random.key(next(_eager_keys)))
        key = random.key(next(_eager_keys)) if training else None
        return self.forward(self.params, inputs, training=training, key=key)[0]

    # ----- weights and config --------------------------------------------------------------------
    def get_weights(self) -> list:
        """The layer's arrays as NumPy arrays, in order (kernel, then bias)."""
        b = _backend()
        return [b.to_numpy(self.params[name]) for name in self.param_specs()]

    def check_weights(self, weights: list) -> None:
        """Raise unless `weights` are arrays of this layer's shapes (as get_weights lists them)."""
        specs = self.param_specs()
        if len(weights) != len(specs):
            raise invalid("weights", f"a list of {len(specs)} arrays for layer '{self.name}'",
                          f"a list of {len(weights)} arrays")
        for (name, (shape, _, _)), w in zip(specs.items(), weights):
            if not hasattr(w, "shape"):
                raise invalid(f"weights ({self.name}/{name})", f"an array of shape {tuple(shape)}", w, InvalidTypeError)
            if tuple(w.shape) != tuple(shape):
                raise invalid(f"weights ({self.name}/{name})", f"shape {tuple(shape)}", tuple(w.shape))

    def set_weights(self, weights: list) -> None:
        """Set the layer's arrays from a list ordered as `get_weights` returns it."""
        self.check_weights(weights)
        b = _backend()
        self.params = {name: b.asarray(w, dtype=b.float_dtype()) for name, w in zip(self.param_specs(), weights)}

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able: `type(layer).from_config(config)` rebuilds it."""
        config = {"name": self.name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


REGISTRY = Registry("layer", Layer)   # the classes a model file may name


class ActivatedLayer(Layer):
    """A linear map followed by an activation: y = act(z), z = linear(x).

    Subclasses define `linear_forward(params, x) -> (z, cache)` and
    `linear_backward(params, cache, dz) -> (dx, grads)`. A loss fused with the activation
    (softmax + cross-entropy) calls `backward_from_preactivation` with dL/dz directly.

    Args:
        activation: a name ("relu"), a serialized config, a `pn.activations.Activation`, or None
            (linear, the default). A plain function is refused: its derivative is unknown.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, activation: ActivationArg = None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, params, x, training=False, key=None):
        z, cache = self.linear_forward(params, x)
        y = self.activation(z)
        return y, (cache, z, y)

    def backward(self, params, cache, dy):
        _, z, y = cache
        return self.backward_from_preactivation(params, cache, self.activation.backward(dy, z, y))

    def backward_from_preactivation(self, params, cache, dz):
        return self.linear_backward(params, cache[0], dz)

    @staticmethod
    def preactivation(cache):
        return cache[1]

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class WeightedLayer(ActivatedLayer):
    """An activated layer with a kernel and an optional bias (Dense, Conv2D).

    Args:
        activation: as `ActivatedLayer`. Default None (linear).
        use_bias: whether the layer has a bias (True or False). Default True.
        kernel_initializer: initializer of the kernel (a name, config or `Initializer`).
            Default "glorot_uniform".
        bias_initializer: initializer of the bias. Default "zeros".
        kernel_regularizer: penalty on the kernel added to the loss (a name such as "l2", a
            config, a `Regularizer`, or None). Default None.
        bias_regularizer: penalty on the bias. Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, activation: ActivationArg = None, use_bias: bool = True,
                 kernel_initializer: InitializerArg = "glorot_uniform", bias_initializer: InitializerArg = "zeros",
                 kernel_regularizer: RegularizerArg = None, bias_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(activation=activation, **kwargs)
        if not isinstance(use_bias, bool):
            raise invalid("use_bias", "True or False", use_bias, InvalidTypeError)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def weight_specs(self, kernel_shape, bias_shape):
        specs = {"kernel": (tuple(kernel_shape), self.kernel_initializer, self.kernel_regularizer)}
        if self.use_bias:
            specs["bias"] = (tuple(bias_shape), self.bias_initializer, self.bias_regularizer)
        return specs

    def get_config(self):
        def regularizer(r):
            return None if r is None else regularizers.serialize(r)
        return {**super().get_config(), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizer(self.kernel_regularizer),
                "bias_regularizer": regularizer(self.bias_regularizer)}
