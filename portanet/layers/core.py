"""Input, Dense, Flatten, Reshape, Dropout, Activation, Add and Concatenate."""
import math

from .. import config, random
from ..backend import get as _backend
from ..errors import check_positive_int, invalid
from .base import (REGISTRY, ActivatedLayer, ActivationArg, InitializerArg, Layer, RegularizerArg, Shape, SymbolicTensor,
                   WeightedLayer)


def _shape(name, value):
    value = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d > 0) for d in value):
        raise invalid(name, "a tuple of positive ints (without the batch axis)", value)
    return tuple(value)


@REGISTRY.register()
class InputLayer(Layer):
    """Declares the shape of one example (no batch axis); passes its input through.

    Usually made by `pn.Input`, which returns its output tensor.

    Args:
        shape: the shape of one example without the batch axis: a tuple of positive ints, or an
            int n for (n,).
        name: the layer's name. Default: "input_layer", numbered.
    """

    def __init__(self, shape: int | Shape, name: str | None = None):
        super().__init__(name=name)
        self.shape = _shape("shape", shape)
        self.build(self.shape)

    def forward(self, params, x, training=False, key=None):
        return x, None

    def backward(self, params, cache, dy):
        return dy, {}

    def get_config(self):
        return {"name": self.name, "shape": list(self.shape)}


def Input(shape: int | Shape, name: str | None = None) -> SymbolicTensor:
    """A symbolic input of `shape` (no batch axis), for the functional API and Sequential.

    Args:
        shape: the shape of one example without the batch axis: a tuple of positive ints, or an
            int n for (n,).
        name: the name of its `InputLayer` (and of the model input, for dict inputs). Default:
            "input_layer", numbered.

    Returns:
        A `SymbolicTensor` to call layers on.

    Example:
        inputs = pn.Input((784,))
        outputs = pn.layers.Dense(10, activation="softmax")(pn.layers.Dense(64, activation="relu")(inputs))
        model = pn.Model(inputs, outputs)
    """
    layer = InputLayer(shape, name=name)
    return SymbolicTensor(layer.shape, layer)


@REGISTRY.register()
class Dense(WeightedLayer):
    """Densely-connected layer: y = act(x @ kernel + bias).

    x (batch, ..., in) -> y (batch, ..., units); kernel (in, units), bias (units,).

    Backward, with dz = dL/d(x @ kernel + bias):
        d kernel = x^T dz,   d bias = sum of dz over the batch,   dx = dz kernel^T

    (Products are written `xp.matmul(a, b)`, not `a @ b`, so that a backend can supply its own:
    CuPy's is the one a CUDA graph can capture.)

    Args:
        units: positive int, the size of the output's last axis.
        activation: a name ("relu", "softmax"), a config, a `pn.activations.Activation`, or None
            (linear, the default). A final softmax or sigmoid is fused with a cross-entropy loss.
        use_bias: whether the layer has a bias. Default True.
        kernel_initializer: initializer of the kernel. Default "glorot_uniform".
        bias_initializer: initializer of the bias. Default "zeros".
        kernel_regularizer: penalty on the kernel ("l1", "l2", "l1_l2", a config, a
            `Regularizer`, or None). Default None.
        bias_regularizer: penalty on the bias. Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        model = pn.Sequential([pn.Input((784,)), Dense(64, activation="relu"),
                               Dense(10, activation="softmax")])
        Dense(32)(np.ones((4, 16), "float32")).shape     # (4, 32); the kernel is (16, 32)
    """

    def __init__(self, units: int, activation: ActivationArg = None, use_bias: bool = True,
                 kernel_initializer: InitializerArg = "glorot_uniform", bias_initializer: InitializerArg = "zeros",
                 kernel_regularizer: RegularizerArg = None, bias_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        self.units = check_positive_int("units", units)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise invalid("input_shape", f"at least one axis besides the batch for layer '{self.name}'",
                          input_shape)
        return (*input_shape[:-1], self.units)

    def param_specs(self):
        return self.weight_specs((self.input_shape[-1], self.units), (self.units,))

    def linear_forward(self, params, x):
        z = _backend().xp.matmul(x, params["kernel"])
        if self.use_bias:
            z = z + params["bias"]
        return z, x

    def linear_backward(self, params, x, dz):
        xp = _backend().xp
        x2 = xp.reshape(x, (-1, x.shape[-1]))
        dz2 = xp.reshape(dz, (-1, dz.shape[-1]))
        grads = {"kernel": xp.matmul(x2.T, dz2)}
        if self.use_bias:
            grads["bias"] = xp.sum(dz2, axis=0)
        dx = xp.matmul(dz, params["kernel"].T) if self.needs_input_grad else None
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@REGISTRY.register()
class Activation(ActivatedLayer):
    """Applies an activation: y = act(x), elementwise (softmax: along the last axis).

    Args:
        activation: a name ("relu", "softmax"), a config or a `pn.activations.Activation`.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, activation: ActivationArg, **kwargs):
        super().__init__(activation=activation, **kwargs)

    def linear_forward(self, params, x):
        return x, None

    def linear_backward(self, params, cache, dz):
        return dz, {}


@REGISTRY.register()
class Flatten(Layer):
    """Flattens each example: (batch, d1, d2, ...) -> (batch, d1*d2*...), in memory order.

    With data_format="channels_first" the channel axis is first moved last, as Keras does, so
    that the features come in the order of a channels-last model's (to exchange weights of the
    Dense layer after it); left None, nothing is moved (portanet's default, and PyTorch's).

    Args:
        data_format: None (default: the elements in memory order, whatever the layout),
            "channels_first" (channels moved last first, as Keras) or "channels_last".
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = None if data_format is None else config.data_format(data_format)

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def _moved(self, x):
        return self.data_format == "channels_first" and x.ndim > 2

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        if self._moved(x):
            x = xp.permute_dims(x, (0, *range(2, x.ndim), 1))
        return xp.reshape(x, (x.shape[0], -1)), x.shape

    def backward(self, params, shape, dy):
        xp = _backend().xp
        dx = xp.reshape(dy, shape)
        return (xp.permute_dims(dx, (0, dx.ndim - 1, *range(1, dx.ndim - 1))) if self._moved(dx) else dx), {}

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@REGISTRY.register()
class Reshape(Layer):
    """Reshapes each example: (batch, *input_shape) -> (batch, *target_shape).

    Args:
        target_shape: the output shape without the batch axis, a tuple of positive ints; one
            entry may be -1 (inferred from the input's size).
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, target_shape: Shape, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)) or not all(
                isinstance(d, int) and (d > 0 or d == -1) for d in target_shape) or list(target_shape).count(-1) > 1:
            raise invalid("target_shape", "a tuple of positive ints with at most one -1", target_shape)
        self.target_shape = tuple(target_shape)

    def compute_output_shape(self, input_shape):
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise invalid("target_shape", f"a shape with {size} elements, as input shape {input_shape}",
                          self.target_shape)
        return shape

    def forward(self, params, x, training=False, key=None):
        return _backend().xp.reshape(x, (x.shape[0], *self.output_shape)), x.shape

    def backward(self, params, shape, dy):
        return _backend().xp.reshape(dy, shape), {}

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@REGISTRY.register()
class Dropout(Layer):
    """Inverted dropout: in training, each unit is kept with probability 1 - rate and scaled by
    1 / (1 - rate), so inference is the identity. Masks come from portanet.random: the same key
    drops the same units on every backend.

    Backward: dx = dy / (1 - rate) where the unit was kept, 0 where it was dropped.

    Args:
        rate: the fraction of the units to drop, a float in [0, 1).
        seed: stored in the config only (Keras' argument); the masks come from the keys `fit`
            draws (`pn.set_seed`, `fit(seed=...)`). Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        model = pn.Sequential([pn.Input((784,)), Dense(128, activation="relu"), Dropout(0.2),
                               Dense(10, activation="softmax")])
    """
    needs_key = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise invalid("rate", "a float in [0, 1)", rate)
        self.rate = float(rate)
        self.seed = seed

    def forward(self, params, x, training=False, key=None):
        if not training or self.rate == 0.0:
            return x, None
        if key is None:
            raise invalid("key", f"a random key for layer '{self.name}' in training", key)
        keep = random.bernoulli(key, 1.0 - self.rate, x.shape)
        scale = 1.0 / (1.0 - self.rate)
        return _backend().xp.where(keep, x * scale, 0.0), keep

    def backward(self, params, keep, dy):
        if keep is None:
            return dy, {}
        return _backend().xp.where(keep, dy * (1.0 / (1.0 - self.rate)), 0.0), {}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


__all__ = ["Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape", "Dropout"]
