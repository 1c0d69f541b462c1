"""Losses (Keras names and semantics): a per-example loss, reduced as Keras' "sum over batch size".

Each loss computes every example's loss l and, from its cache, g = dl/dy_pred:

    l, cache = loss.per_example(y_true, y_pred)      l: y_pred's shape without the reduced axis (the
    g = loss.per_example_grad(cache)                 last): a mean for the regression and binary
                                                     losses, a sum for the categorical ones
    value = sum(w * l) / n,   dvalue/dy_pred = g * w / n      n examples, sample weights w (default 1)

`forward(y_true, y_pred, sample_weight=None) -> (value, cache)` and `backward(cache)` do the
reduction (Keras weighs examples this way: the weights are not normalized). Cross-entropies with
`from_logits=False` that follow the matching output activation (softmax for the categorical
ones, sigmoid for the binary one) are *fused* with it by the model:
`logits_forward(y_true, z, sample_weight=None) -> (value, dvalue/dz)` works from the
pre-activation z (log-softmax / log-sigmoid, no log of a rounded-to-zero probability), and the
gradient is the famous (p - y) / batch, with no division by p. Unfused, probabilities are clipped
to [1e-7, 1 - 1e-7] as Keras does.

A loss of your own: subclass `Loss` and define `per_example` and `per_example_grad` (a plain
function is refused: portanet needs the gradient, which it does not derive).
"""
import math

from . import activations
from .backend import get as _backend
from .errors import InvalidTypeError, check_number, invalid
from .registry import Registry, Serializable

EPSILON = 1e-7


class Loss(Serializable):
    """Base class: `per_example(y_true, y_pred) -> (l, cache)`, `per_example_grad(cache)`.

    Args:
        from_logits: whether y_pred holds logits rather than probabilities (cross-entropies). Default False."""
    name = None
    # what y_true must look like: "dense" (same shape as y_pred), "sparse" (class indices),
    # "binary" (0/1, same shape as y_pred)
    label_kind = "dense"
    fused_activation = None  # activation name whose pre-activation logits_forward accepts
    reduced_axis = -1        # the axis per_example reduces

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, bool):
            raise invalid("from_logits", "True or False", from_logits, InvalidTypeError)
        self.from_logits = from_logits

    def per_example(self, y_true, y_pred):
        raise NotImplementedError

    def per_example_grad(self, cache):
        raise NotImplementedError

    def forward(self, y_true, y_pred, sample_weight=None):
        """(sum(w * l) / n, cache)."""
        losses, cache = self.per_example(y_true, y_pred)
        value, scale = _reduce(losses, sample_weight)
        return value, (cache, scale)

    def backward(self, cache):
        """dvalue/dy_pred."""
        cache, scale = cache
        return self.per_example_grad(cache) * _expanded(scale, self.reduced_axis)

    def logits_forward(self, y_true, z, sample_weight=None):
        """(value, dvalue/dz) from the pre-activation of the fused activation."""
        losses, grad = self.per_example_logits(y_true, z)
        value, scale = _reduce(losses, sample_weight)
        return value, grad * _expanded(scale, self.reduced_axis)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.forward(y_true, y_pred, sample_weight)[0]

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self):
        return f"<loss {self.name} from_logits={self.from_logits}>"


def _reduce(losses, sample_weight):
    """(sum(w * l) / n, w / n) of per-example losses l and weights w (one per example or per
    element of l, broadcast)."""
    xp = _backend().xp
    n = math.prod(losses.shape)
    if sample_weight is None:
        return xp.sum(losses) / n, 1.0 / n
    w = xp.astype(sample_weight, losses.dtype)
    w = xp.reshape(w, (*w.shape, *([1] * (losses.ndim - w.ndim))))
    return xp.sum(losses * w) / n, w * (1.0 / n)


def _expanded(scale, axis):
    """The per-example scale with the reduced axis back, to multiply a gradient."""
    return scale if isinstance(scale, float) else _backend().xp.expand_dims(scale, axis=axis)


def _legacy(config):
    """Files written before version 0.2 stored {"name": ..., "from_logits": ...}."""
    if isinstance(config, dict) and "class_name" not in config and "name" in config:
        cls = REGISTRY.names.get(config["name"])
        name = cls.__name__ if isinstance(cls, type) else config["name"]
        return {"class_name": name, "config": {"from_logits": bool(config.get("from_logits", False))}}
    return config


REGISTRY = Registry("loss", Loss, legacy=_legacy)


class _Regression(Loss):
    """A loss of the difference d = y_pred - y_true, averaged over the last axis:
    l = mean(f(d)), g = f'(d) / K for K values in the last axis."""

    def per_example(self, y_true, y_pred):
        d = y_pred - y_true
        return _backend().xp.mean(self.f(d), axis=-1), d

    def per_example_grad(self, d):
        return self.f_prime(d) * (1.0 / d.shape[-1])


@REGISTRY.register("mean_squared_error", "mse")
class MeanSquaredError(_Regression):
    """Mean squared error: l = mean (y_pred - y_true)^2;  dl/dy_pred = 2 (y_pred - y_true) / K.

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "mean_squared_error"

    def f(self, d):
        return d * d

    def f_prime(self, d):
        return 2.0 * d


@REGISTRY.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_Regression):
    """Mean absolute error: l = mean |y_pred - y_true|;  dl/dy_pred = sign(y_pred - y_true) / K.

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "mean_absolute_error"

    def f(self, d):
        return _backend().xp.abs(d)

    def f_prime(self, d):
        return _backend().xp.sign(d)


@REGISTRY.register("huber")
class Huber(_Regression):
    """Huber loss of d = y_pred - y_true: l = mean of d^2 / 2 where |d| <= delta, delta (|d| - delta / 2)
    elsewhere; dl/dd = d, or delta sign(d).

    Args:
        delta: positive float, where the loss turns from quadratic to linear. Default 1.0.
        from_logits: unused (every loss accepts it). Default False."""
    name = "huber"

    def __init__(self, delta=1.0, from_logits=False):
        super().__init__(from_logits)
        self.delta = check_number("delta", delta, "a positive float", strict_minimum=True)

    def f(self, d):
        xp, a = _backend().xp, _backend().xp.abs(d)
        return xp.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))

    def f_prime(self, d):
        xp = _backend().xp
        return xp.where(xp.abs(d) <= self.delta, d, self.delta * xp.sign(d))

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@REGISTRY.register("log_cosh")
class LogCosh(_Regression):
    """Log-cosh of d = y_pred - y_true: l = mean log(cosh(d)), as d + softplus(-2d) - log 2;  dl/dd = tanh(d).

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "log_cosh"

    def f(self, d):
        return d + activations.softplus(-2.0 * d) - math.log(2.0)

    def f_prime(self, d):
        return _backend().xp.tanh(d)


@REGISTRY.register("poisson")
class Poisson(Loss):
    """Poisson: l = mean(y_pred - y_true log(y_pred + eps));  dl/dy_pred = (1 - y_true / (y_pred + eps)) / K.

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "poisson"

    def per_example(self, y_true, y_pred):
        return _backend().xp.mean(y_pred - y_true * _backend().xp.log(y_pred + EPSILON), axis=-1), (y_true, y_pred)

    def per_example_grad(self, cache):
        y_true, y_pred = cache
        return (1.0 - y_true / (y_pred + EPSILON)) * (1.0 / y_pred.shape[-1])


@REGISTRY.register("kl_divergence", "kld")
class KLDivergence(Loss):
    """KL divergence: l = sum t log(t / p), t and p clipped to [eps, 1];  dl/dy_pred = -t / p (0 where clipped).

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "kl_divergence"

    def per_example(self, y_true, y_pred):
        xp = _backend().xp
        t, p = xp.clip(y_true, min=EPSILON, max=1.0), xp.clip(y_pred, min=EPSILON, max=1.0)
        return xp.sum(t * xp.log(t / p), axis=-1), (t, p, y_pred)

    def per_example_grad(self, cache):
        t, p, y_pred = cache
        return _backend().xp.where((y_pred > EPSILON) & (y_pred < 1.0), -t / p, 0.0)


class _Margin(Loss):
    """Hinge losses of the margin m = 1 - t * y_pred, labels t in {-1, 1} (labels all in {0, 1}
    are mapped to {-1, 1}, as Keras does)."""
    label_kind = "binary_or_signed"

    def per_example(self, y_true, y_pred):
        xp = _backend().xp
        binary = xp.all((y_true == 0.0) | (y_true == 1.0))
        t = xp.where(binary, 2.0 * y_true - 1.0, y_true)
        m = xp.maximum(1.0 - t * y_pred, 0.0)
        return xp.mean(self.f(m), axis=-1), (t, m)

    def per_example_grad(self, cache):
        t, m = cache
        return self.f_prime(m) * (-t) * (1.0 / m.shape[-1])


@REGISTRY.register("hinge")
class Hinge(_Margin):
    """Hinge: l = mean max(1 - t y, 0);  dl/dy = -t where the margin is positive, 0 elsewhere.

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "hinge"

    def f(self, m):
        return m

    def f_prime(self, m):
        xp = _backend().xp
        return xp.astype(m > 0, m.dtype)


@REGISTRY.register("squared_hinge")
class SquaredHinge(_Margin):
    """Squared hinge: l = mean max(1 - t y, 0)^2;  dl/dy = -2 t max(1 - t y, 0).

    Args:
        from_logits: unused (every loss accepts it). Default False."""
    name = "squared_hinge"

    def f(self, m):
        return m * m

    def f_prime(self, m):
        return 2.0 * m


@REGISTRY.register("cosine_similarity")
class CosineSimilarity(Loss):
    """Negative cosine similarity: l = -sum(t^ p^) along `axis`, x^ = x / sqrt(max(sum x^2, 1e-12))
    (Keras: -1 for equal directions); dl/dy_pred = -(t^ - p^ (t^ . p^)) / |y_pred|.

    Args:
        axis: the axis along which the similarity is computed. Default -1.
        from_logits: unused (every loss accepts it). Default False."""
    name = "cosine_similarity"

    def __init__(self, axis=-1, from_logits=False):
        super().__init__(from_logits)
        self.axis = self.reduced_axis = axis

    def _unit(self, x):
        xp = _backend().xp
        norm = xp.sqrt(xp.maximum(xp.sum(x * x, axis=self.axis, keepdims=True), 1e-12))
        return x / norm, norm

    def per_example(self, y_true, y_pred):
        t, _ = self._unit(y_true)
        p, norm = self._unit(y_pred)
        return -_backend().xp.sum(t * p, axis=self.axis), (t, p, norm)

    def per_example_grad(self, cache):
        t, p, norm = cache
        return -(t - p * _backend().xp.sum(t * p, axis=self.axis, keepdims=True)) / norm

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@REGISTRY.register("binary_crossentropy")
class BinaryCrossentropy(Loss):
    """Binary cross-entropy: l = -mean[y log p + (1 - y) log(1 - p)] over the last axis, p = sigmoid(z).

    From logits z: l = mean[max(z, 0) - z y + log(1 + exp(-|z|))];  dl/dz = (sigmoid(z) - y) / K.

    Args:
        from_logits: whether y_pred holds logits z rather than probabilities. Default False.
    """
    name = "binary_crossentropy"
    label_kind = "binary"
    fused_activation = "sigmoid"

    def per_example_logits(self, y_true, z):
        xp = _backend().xp
        losses = xp.mean(xp.maximum(z, 0.0) - z * y_true + xp.log1p(xp.exp(-xp.abs(z))), axis=-1)
        return losses, (activations.sigmoid(z) - y_true) * (1.0 / z.shape[-1])

    def per_example(self, y_true, y_pred):
        if self.from_logits:
            return self.per_example_logits(y_true, y_pred)
        xp = _backend().xp
        p = xp.clip(y_pred, min=EPSILON, max=1.0 - EPSILON)
        losses = -xp.mean(y_true * xp.log(p) + (1.0 - y_true) * xp.log(1.0 - p), axis=-1)
        inside = (y_pred > EPSILON) & (y_pred < 1.0 - EPSILON)  # the clip passes no gradient outside
        return losses, xp.where(inside, (p - y_true) / (p * (1.0 - p)), 0.0) * (1.0 / p.shape[-1])

    def per_example_grad(self, grad):
        return grad


@REGISTRY.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy: l = -sum_k y_k log p_k, y one-hot (or soft), p = softmax(z)
    (unfused: p = y_pred / sum y_pred, so dl/dy_pred = (dl/dp - sum_k p_k dl/dp_k) / sum y_pred).

    From logits: l = -sum_k y_k log_softmax(z)_k;  dl/dz = p sum_k y_k - y.

    Args:
        from_logits: whether y_pred holds logits z rather than probabilities. Default False.
    """
    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def per_example_logits(self, y_true, z):
        xp = _backend().xp
        logp = activations.log_softmax(z)
        return -xp.sum(y_true * logp, axis=-1), xp.exp(logp) * xp.sum(y_true, axis=-1, keepdims=True) - y_true

    def per_example(self, y_true, y_pred):
        if self.from_logits:
            return self.per_example_logits(y_true, y_pred)
        xp = _backend().xp
        total = xp.sum(y_pred, axis=-1, keepdims=True)
        q = y_pred / total  # as Keras, rows are first scaled to sum to one
        p = xp.clip(q, min=EPSILON, max=1.0 - EPSILON)
        dq = xp.where((q > EPSILON) & (q < 1.0 - EPSILON), -y_true / p, 0.0)
        return -xp.sum(y_true * xp.log(p), axis=-1), (dq - xp.sum(dq * q, axis=-1, keepdims=True)) / total

    def per_example_grad(self, grad):
        return grad


@REGISTRY.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer class labels y (batch,) instead of one-hot.

    Args:
        from_logits: whether y_pred holds logits z rather than probabilities. Default False.

    Example:
        model.compile("adam", loss=pn.losses.SparseCategoricalCrossentropy(from_logits=True))"""
    name = "sparse_categorical_crossentropy"
    label_kind = "sparse"

    @staticmethod
    def one_hot(y_true, y_pred):
        xp = _backend().xp
        classes = xp.arange(y_pred.shape[-1], dtype=y_true.dtype)
        labels = xp.reshape(y_true, (*y_pred.shape[:-1], 1))
        return xp.astype(labels == classes, y_pred.dtype)

    def per_example_logits(self, y_true, z):
        return super().per_example_logits(self.one_hot(y_true, z), z)

    def per_example(self, y_true, y_pred):
        if self.from_logits:
            return self.per_example_logits(y_true, y_pred)
        return super().per_example(self.one_hot(y_true, y_pred), y_pred)


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
serialize, deserialize = REGISTRY.serialize, REGISTRY.deserialize


def get(identifier):
    """A Loss from a name ("mse", "sparse_categorical_crossentropy"), a config dict or a Loss.

    Returns:
        A `Loss` (a plain function is refused: its gradient is unknown)."""
    if callable(identifier) and not isinstance(identifier, (Loss, type)):
        raise InvalidTypeError(
            f"Invalid value for `loss`. Expected a name or a portanet.losses.Loss, which knows its gradient "
            f"(portanet does not derive it). Received: loss={identifier!r}. To use your own loss, subclass "
            f"portanet.losses.Loss and define per_example(y_true, y_pred) -> (l, cache) and "
            f"per_example_grad(cache) -> dl/dy_pred (see the module's documentation).")
    return REGISTRY.get(identifier)
