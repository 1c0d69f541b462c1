"""Normalization layers: BatchNormalization, LayerNormalization, Normalization (statistics adapted
from data) and Rescaling."""
from .. import config, initializers, regularizers
from ..backend import get as _backend
from ..errors import check_bool, check_number, invalid
from .base import REGISTRY, InitializerArg, Layer, RegularizerArg


def _axes(name, value):
    axes = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(axes, (tuple, list)) or not axes or not all(
            isinstance(a, int) and not isinstance(a, bool) and a != 0 for a in axes):
        raise invalid(name, "a non-zero int or a list of them (axis 0 is the batch)", value)
    return tuple(axes)


def _resolved(layer, axes, input_shape):
    """`axes` as indices of the whole (batch, *input_shape) array; an error if out of range."""
    rank = len(input_shape) + 1
    if any(not -rank < a < rank for a in axes):
        raise invalid("axis", f"axes of an input of shape {(None, *input_shape)} for layer '{layer.name}'", axes)
    return tuple(sorted(a % rank for a in axes))


def _normalize(xp, x, axes, epsilon):
    """(x - mean) / sqrt(var + epsilon) over `axes`, with 1/sqrt(var + epsilon), the mean and var."""
    mean = xp.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=axes, keepdims=True)
    inv = 1.0 / xp.sqrt(var + epsilon)
    return centred * inv, inv, mean, var


def _normalize_backward(xp, dxhat, xhat, inv, axes):
    """dL/dx through x -> (x - mean) / std over `axes` (M elements each):
    dx = inv / M * (M dxhat - sum(dxhat) - xhat sum(dxhat xhat))."""
    count = 1
    for a in axes:
        count *= dxhat.shape[a]
    total, projection = xp.sum(dxhat, axis=axes, keepdims=True), xp.sum(dxhat * xhat, axis=axes, keepdims=True)
    return (inv * (1.0 / count)) * (count * dxhat - total - xhat * projection)


class _ScaleShift(Layer):
    """y = gamma * xhat + beta over the parameter axes (each optional): the learned part of the
    batch and layer normalizations."""

    def __init__(self, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                 gamma_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_number("epsilon", epsilon, "a positive float", strict_minimum=True)
        self.center, self.scale = check_bool("center", center), check_bool("scale", scale)
        self.beta_initializer, self.gamma_initializer = initializers.get(beta_initializer), initializers.get(gamma_initializer)
        self.beta_regularizer, self.gamma_regularizer = regularizers.get(beta_regularizer), regularizers.get(gamma_regularizer)

    def affine_specs(self, shape):
        specs = {}
        if self.scale:
            specs["gamma"] = (shape, self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            specs["beta"] = (shape, self.beta_initializer, self.beta_regularizer)
        return specs

    def affine(self, xp, params, xhat, broadcast):
        y = xhat * xp.reshape(params["gamma"], broadcast) if self.scale else xhat
        return y + xp.reshape(params["beta"], broadcast) if self.center else y

    def affine_backward(self, xp, params, xhat, dy, broadcast, summed):
        grads = {}
        if self.scale:
            grads["gamma"] = xp.reshape(xp.sum(dy * xhat, axis=summed), params["gamma"].shape)
        if self.center:
            grads["beta"] = xp.reshape(xp.sum(dy, axis=summed), params["beta"].shape)
        return (dy * xp.reshape(params["gamma"], broadcast) if self.scale else dy), grads

    def get_config(self):
        def reg(r):
            return None if r is None else regularizers.serialize(r)
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": reg(self.beta_regularizer), "gamma_regularizer": reg(self.gamma_regularizer)}


@REGISTRY.register()
class BatchNormalization(_ScaleShift):
    """Normalizes each channel over the batch (and the spatial positions) (Ioffe & Szegedy 2015).

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta.

    In training, mean and var are the batch's, and the moving statistics follow them:
    moving = momentum * moving + (1 - momentum) * batch (Keras' rule, biased variance); in
    inference (and in training when the layer is not `trainable`, as Keras 3), the moving ones
    are used. gamma and beta are trained; moving_mean and moving_variance are non-trainable
    parameters, saved and loaded with the others and counted as non-trainable by `summary()`.
    Backward (training): dx = inv / M * (M dxhat - sum(dxhat) - xhat sum(dxhat xhat)), with
    dxhat = gamma dy, inv = 1 / sqrt(var + epsilon) and M elements per channel.

    Args:
        axis: the channel axis (a non-zero int counted with the batch axis). Default None: the
            images' channel axis (1 for channels first, -1 for channels last, as
            pn.config.image_data_format() says when the layer is made).
        momentum: the moving statistics' decay (non-negative). Default 0.99.
        epsilon: positive float added to the variance. Default 1e-3.
        center: whether to learn beta (else beta = 0). Default True.
        scale: whether to learn gamma (else gamma = 1). Default True.
        beta_initializer: initializer of beta. Default "zeros".
        gamma_initializer: initializer of gamma. Default "ones".
        moving_mean_initializer: initializer of moving_mean. Default "zeros".
        moving_variance_initializer: initializer of moving_variance. Default "ones".
        beta_regularizer, gamma_regularizer: penalties on beta and gamma. Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        model = pn.Sequential([pn.Input((3, 32, 32)), pn.layers.Conv2D(16, 3, use_bias=False),
                               BatchNormalization(), pn.layers.ReLU()])
    """
    non_trainable = ("moving_mean", "moving_variance")

    def __init__(self, axis: int | None = None, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: InitializerArg = "zeros", gamma_initializer: InitializerArg = "ones",
                 moving_mean_initializer: InitializerArg = "zeros", moving_variance_initializer: InitializerArg = "ones",
                 beta_regularizer: RegularizerArg = None, gamma_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, **kwargs)
        default = 1 if config.image_data_format() == "channels_first" else -1
        self.axis = _axes("axis", default if axis is None else axis)[0]
        self.momentum = check_number("momentum", momentum)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def compute_output_shape(self, input_shape):
        self.channel_axis = _resolved(self, (self.axis,), input_shape)[0]
        return input_shape

    def param_specs(self):
        shape = (self.input_shape[self.channel_axis - 1],)
        return {**self.affine_specs(shape), "moving_mean": (shape, self.moving_mean_initializer, None),
                "moving_variance": (shape, self.moving_variance_initializer, None)}

    def _geometry(self, x):
        reduce = tuple(a for a in range(x.ndim) if a != self.channel_axis)
        broadcast = tuple(x.shape[a] if a == self.channel_axis else 1 for a in range(x.ndim))
        return reduce, broadcast

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        reduce, broadcast = self._geometry(x)
        if training and self.trainable:
            xhat, inv, mean, var = _normalize(xp, x, reduce, self.epsilon)
            stats = (xp.reshape(mean, (-1,)), xp.reshape(var, (-1,)))
        else:
            inv = 1.0 / xp.sqrt(xp.reshape(params["moving_variance"], broadcast) + self.epsilon)
            xhat, stats = (x - xp.reshape(params["moving_mean"], broadcast)) * inv, None
        return self.affine(xp, params, xhat, broadcast), (xhat, inv, stats)

    def backward(self, params, cache, dy):
        xp = _backend().xp
        xhat, inv, stats = cache
        reduce, broadcast = self._geometry(dy)
        dxhat, grads = self.affine_backward(xp, params, xhat, dy, broadcast, reduce)
        if not self.needs_input_grad:
            return None, grads
        dx = _normalize_backward(xp, dxhat, xhat, inv, reduce) if stats is not None else dxhat * inv
        return dx, grads

    def state_updates(self, params, cache):
        stats = cache[2]
        if stats is None:
            return {}
        m = self.momentum
        return {"moving_mean": m * params["moving_mean"] + (1.0 - m) * stats[0],
                "moving_variance": m * params["moving_variance"] + (1.0 - m) * stats[1]}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}


@REGISTRY.register()
class LayerNormalization(_ScaleShift):
    """Normalizes each example over `axis` (Ba et al. 2016), the same in training and inference.

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, mean and var over the normalized axes,
    gamma and beta shaped as them. Backward as BatchNormalization's, over those axes.

    Args:
        axis: a non-zero int or a list of them, counted with the batch axis. Default -1.
        epsilon: positive float added to the variance. Default 1e-3.
        center: whether to learn beta (else beta = 0). Default True.
        scale: whether to learn gamma (else gamma = 1). Default True.
        beta_initializer: initializer of beta. Default "zeros".
        gamma_initializer: initializer of gamma. Default "ones".
        beta_regularizer, gamma_regularizer: penalties on beta and gamma. Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 beta_initializer: InitializerArg = "zeros", gamma_initializer: InitializerArg = "ones",
                 beta_regularizer: RegularizerArg = None, gamma_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, **kwargs)
        self.axis = _axes("axis", axis)

    def compute_output_shape(self, input_shape):
        self.axes = _resolved(self, self.axis, input_shape)
        return input_shape

    def param_specs(self):
        return self.affine_specs(tuple(self.input_shape[a - 1] for a in self.axes))

    def _geometry(self, x):
        summed = tuple(a for a in range(x.ndim) if a not in self.axes)
        broadcast = tuple(x.shape[a] if a in self.axes else 1 for a in range(x.ndim))
        return summed, broadcast

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        xhat, inv, _, _ = _normalize(xp, x, self.axes, self.epsilon)
        return self.affine(xp, params, xhat, self._geometry(x)[1]), (xhat, inv)

    def backward(self, params, cache, dy):
        xp = _backend().xp
        xhat, inv = cache
        summed, broadcast = self._geometry(dy)
        dxhat, grads = self.affine_backward(xp, params, xhat, dy, broadcast, summed)
        return (_normalize_backward(xp, dxhat, xhat, inv, self.axes) if self.needs_input_grad else None), grads

    def get_config(self):
        axis = list(self.axis) if len(self.axis) > 1 else self.axis[0]
        return {**super().get_config(), "axis": axis}


@REGISTRY.register()
class Normalization(Layer):
    """Feature-wise standardization with fixed statistics (Keras' Normalization).

    y = (x - mean) / max(sqrt(variance), 1e-7);  dx = dy / max(sqrt(variance), 1e-7).

    The statistics, one per index along `axis` (default -1, counted with the batch axis), are
    given (`mean`, `variance`: numbers or lists) or computed from data by `adapt(data)` (over
    every other axis); they are non-trainable parameters, saved and loaded with the model.

    Args:
        axis: the feature axis, a non-zero int counted with the batch axis. Default -1.
        mean: None (the default: 0 until `adapt`), a number or a list, one per feature.
        variance: as `mean` (default 1 until `adapt`); give both or neither.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        norm = Normalization()
        norm.adapt(x_train)                        # x_train (examples, features)
        model = pn.Sequential([pn.Input(x_train.shape[1:]), norm, pn.layers.Dense(1)])
    """
    non_trainable = ("mean", "variance")

    def __init__(self, axis: int = -1, mean=None, variance=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes("axis", axis)[0]
        if (mean is None) != (variance is None):
            raise invalid("variance" if variance is None else "mean", "given together with the other", None)
        self.mean, self.variance = mean, variance

    def compute_output_shape(self, input_shape):
        self.feature_axis = _resolved(self, (self.axis,), input_shape)[0]
        return input_shape

    def param_specs(self):
        shape = (self.input_shape[self.feature_axis - 1],)
        return {"mean": (shape, initializers.Zeros(), None), "variance": (shape, initializers.Ones(), None)}

    def init(self, key):
        if self.mean is None:
            return super().init(key)
        b = _backend()
        shape = (self.input_shape[self.feature_axis - 1],)
        return {name: b.xp.broadcast_to(b.asarray(value, dtype=b.float_dtype()), shape)
                for name, value in (("mean", self.mean), ("variance", self.variance))}

    def adapt(self, data):
        """Compute the mean and variance of `data` (an array, examples along axis 0), over every
        axis but the feature axis; builds the layer if it is not built."""
        b = _backend()
        x = b.asarray(data, dtype=b.float_dtype())
        if not self.built:
            self.build(tuple(x.shape[1:]))
        elif tuple(x.shape[1:]) != tuple(self.input_shape):
            raise invalid("data.shape", f"(batch, {', '.join(map(str, self.input_shape))})", tuple(x.shape))
        reduce = tuple(a for a in range(x.ndim) if a != self.feature_axis)
        self.params = {"mean": b.xp.mean(x, axis=reduce), "variance": b.xp.var(x, axis=reduce)}
        self.mean, self.variance = (b.to_numpy(self.params[k]).tolist() for k in ("mean", "variance"))

    def _denominator(self, xp, params, ndim):
        broadcast = tuple(-1 if a == self.feature_axis else 1 for a in range(ndim))
        mean, variance = (xp.reshape(params[k], broadcast) for k in ("mean", "variance"))
        return mean, xp.maximum(xp.sqrt(variance), 1e-7)

    def forward(self, params, x, training=False, key=None):
        mean, denominator = self._denominator(_backend().xp, params, x.ndim)
        return (x - mean) / denominator, None

    def backward(self, params, cache, dy):
        if not self.needs_input_grad:
            return None, {}
        return dy / self._denominator(_backend().xp, params, dy.ndim)[1], {}

    def get_config(self):
        def listed(value):
            return value.tolist() if hasattr(value, "tolist") else value
        return {**super().get_config(), "axis": self.axis, "mean": listed(self.mean), "variance": listed(self.variance)}


@REGISTRY.register()
class Rescaling(Layer):
    """Rescales inputs: y = x * scale + offset (e.g. scale=1/255 for pixels);  dx = dy * scale.

    Args:
        scale: a finite number.
        offset: a finite number. Default 0.0.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, scale: float, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_number("scale", scale, "a finite number", minimum=-float("inf"))
        self.offset = check_number("offset", offset, "a finite number", minimum=-float("inf"))

    def forward(self, params, x, training=False, key=None):
        return x * self.scale + self.offset, None

    def backward(self, params, cache, dy):
        return (dy * self.scale if self.needs_input_grad else None), {}

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
