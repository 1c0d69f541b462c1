"""Activations as layers (Keras' Softmax, ReLU, LeakyReLU, ELU; PReLU, whose slope is learned).

The first four are `Activation` layers with their activation's arguments; as the last layer of a
model, Softmax is fused with a cross-entropy loss like a Dense layer's softmax."""
from .. import activations, initializers, regularizers
from ..backend import get as _backend
from ..errors import invalid
from .base import REGISTRY, InitializerArg, Layer, RegularizerArg
from .core import Activation


class _ActivationLayer(Activation):
    """An Activation layer configured by its activation's arguments (`make(**arguments)`)."""

    def __init__(self, make, arguments, **kwargs):
        super().__init__(make(**arguments), **kwargs)
        self.arguments = arguments

    def get_config(self):
        return {**Layer.get_config(self), **self.arguments}


@REGISTRY.register()
class Softmax(_ActivationLayer):
    """Softmax activation layer: y = softmax(x) along `axis`.

    Args:
        axis: the axis normalized (counted with the batch axis). Default -1.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(activations.Softmax, {"axis": axis}, **kwargs)


@REGISTRY.register()
class ReLU(_ActivationLayer):
    """Rectified linear unit layer: y = x above `threshold`, negative_slope * (x - threshold) below
    it, at most `max_value`.

    Args:
        max_value: None (no cap, the default) or a non-negative float: the largest output.
        negative_slope: non-negative float, the slope below the threshold. Default 0.0.
        threshold: the input value below which the slope is `negative_slope`. Default 0.0.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs):
        if max_value is not None and max_value < 0:
            raise invalid("max_value", "None or a non-negative number", max_value)
        if negative_slope < 0:
            raise invalid("negative_slope", "a non-negative number", negative_slope)
        super().__init__(activations.ReLU, {"max_value": max_value, "negative_slope": negative_slope,
                                            "threshold": threshold}, **kwargs)


@REGISTRY.register()
class LeakyReLU(_ActivationLayer):
    """Leaky ReLU layer: y = x for x > 0, negative_slope * x otherwise.

    Args:
        negative_slope: the slope for x <= 0. Default 0.3 (Keras' layer default).
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs):
        super().__init__(activations.LeakyReLU, {"negative_slope": negative_slope}, **kwargs)


@REGISTRY.register()
class ELU(_ActivationLayer):
    """Exponential linear unit layer: y = x for x > 0, alpha * (exp(x) - 1) otherwise.

    Args:
        alpha: the scale of the negative part. Default 1.0.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(activations.ELU, {"alpha": alpha}, **kwargs)


@REGISTRY.register()
class PReLU(Layer):
    """Parametric ReLU: y = x for x > 0, alpha * x otherwise, with alpha learned.

    One alpha per input unit, shared along `shared_axes` (axes counted with the batch axis:
    (2, 3) shares it over an NCHW image).

    Backward: dx = dy where x > 0, alpha * dy elsewhere; dalpha = the sum of dy * x over the
    elements with x <= 0 that share it.

    Args:
        alpha_initializer: initializer of alpha. Default "zeros".
        alpha_regularizer: penalty on alpha (as Dense's kernel_regularizer). Default None.
        shared_axes: None (the default: no sharing), an int or a tuple of axes >= 1.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, alpha_initializer: InitializerArg = "zeros", alpha_regularizer: RegularizerArg = None,
                 shared_axes: tuple[int, ...] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        axes = () if shared_axes is None else (shared_axes,) if isinstance(shared_axes, int) else tuple(shared_axes)
        if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in axes):
            raise invalid("shared_axes", "None or positive ints (axis 0 is the batch)", shared_axes)
        self.shared_axes = axes

    def compute_output_shape(self, input_shape):
        if any(a > len(input_shape) for a in self.shared_axes):
            raise invalid("shared_axes", f"axes of the input (shape {(None, *input_shape)}) of layer "
                          f"'{self.name}'", self.shared_axes)
        return input_shape

    def param_specs(self):
        shape = tuple(1 if i + 1 in self.shared_axes else d for i, d in enumerate(self.input_shape))
        return {"alpha": (shape, self.alpha_initializer, self.alpha_regularizer)}

    def forward(self, params, x, training=False, key=None):
        return _backend().xp.where(x > 0, x, params["alpha"] * x), x

    def backward(self, params, x, dy):
        xp = _backend().xp
        negative = xp.where(x > 0, 0.0, dy * x)
        dalpha = xp.sum(negative, axis=(0, *self.shared_axes), keepdims=True)
        grads = {"alpha": xp.reshape(dalpha, params["alpha"].shape)}
        return (xp.where(x > 0, dy, params["alpha"] * dy) if self.needs_input_grad else None), grads

    def get_config(self):
        reg = self.alpha_regularizer
        return {**super().get_config(), "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": None if reg is None else regularizers.serialize(reg),
                "shared_axes": list(self.shared_axes) or None}
