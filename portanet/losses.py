"""Losses (Keras names and semantics): the mean over the batch of a per-example loss.

`loss.forward(y_true, y_pred) -> (value, cache)` and `loss.backward(cache) -> dL/dy_pred`.
Cross-entropies with `from_logits=False` that follow the matching output activation (softmax for
the categorical ones, sigmoid for the binary one) are *fused* with it by the model:
`loss.logits_forward(y_true, z) -> (value, dL/dz)` computes the loss from the pre-activation z
(log-softmax / log-sigmoid, no log of a rounded-to-zero probability) and the gradient is the
famous `(p - y) / batch`, with no division by p. Unfused, probabilities are clipped to
[1e-7, 1 - 1e-7] as Keras does.
"""
from . import activations
from .backend import get as _backend
from .errors import InvalidTypeError, invalid
from .registry import Registry, Serializable

EPSILON = 1e-7


class Loss(Serializable):
    """Base class: `forward(y_true, y_pred) -> (value, cache)`, `backward(cache) -> dL/dy_pred`."""
    name = None
    # what y_true must look like: "dense" (same shape as y_pred), "sparse" (class indices),
    # "binary" (0/1, same shape as y_pred)
    label_kind = "dense"
    fused_activation = None  # activation name whose pre-activation logits_forward accepts

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, bool):
            raise invalid("from_logits", "True or False", from_logits, InvalidTypeError)
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred):
        return self.forward(y_true, y_pred)[0]

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self):
        return f"<loss {self.name} from_logits={self.from_logits}>"


def _legacy(config):
    """Files written before version 0.2 stored {"name": ..., "from_logits": ...}."""
    if isinstance(config, dict) and "class_name" not in config and "name" in config:
        cls = REGISTRY.names.get(config["name"])
        name = cls.__name__ if isinstance(cls, type) else config["name"]
        return {"class_name": name, "config": {"from_logits": bool(config.get("from_logits", False))}}
    return config


REGISTRY = Registry("loss", Loss, legacy=_legacy)


def _per_example_count(y):
    """Examples the mean runs over: every axis but the last (Keras reduces the last, then averages)."""
    n = 1
    for d in y.shape[:-1]:
        n *= d
    return n


@REGISTRY.register("mean_squared_error", "mse")
class MeanSquaredError(Loss):
    """L = mean over examples of mean_k (y_pred - y_true)^2;  dL/dy_pred = 2 (y_pred - y_true) / size."""
    name = "mean_squared_error"

    def forward(self, y_true, y_pred):
        xp = _backend().xp
        diff = y_pred - y_true
        return xp.mean(diff * diff), diff

    def backward(self, diff):
        return (2.0 / _size(diff)) * diff


@REGISTRY.register("mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    """L = mean |y_pred - y_true|;  dL/dy_pred = sign(y_pred - y_true) / size."""
    name = "mean_absolute_error"

    def forward(self, y_true, y_pred):
        xp = _backend().xp
        diff = y_pred - y_true
        return xp.mean(xp.abs(diff)), diff

    def backward(self, diff):
        return _backend().xp.sign(diff) * (1.0 / _size(diff))


def _size(a):
    n = 1
    for d in a.shape:
        n *= d
    return n


@REGISTRY.register("binary_crossentropy")
class BinaryCrossentropy(Loss):
    """L = -mean[y log p + (1 - y) log(1 - p)], p = sigmoid(z).

    From logits z: L = mean[max(z, 0) - z y + log(1 + exp(-|z|))];  dL/dz = (sigmoid(z) - y) / size.
    """
    name = "binary_crossentropy"
    label_kind = "binary"
    fused_activation = "sigmoid"

    def logits_forward(self, y_true, z):
        xp = _backend().xp
        value = xp.mean(xp.maximum(z, 0.0) - z * y_true + xp.log1p(xp.exp(-xp.abs(z))))
        return value, (activations.sigmoid(z) - y_true) * (1.0 / _size(z))

    def forward(self, y_true, y_pred):
        if self.from_logits:
            value, grad = self.logits_forward(y_true, y_pred)
            return value, grad
        xp = _backend().xp
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        value = -xp.mean(y_true * xp.log(p) + (1.0 - y_true) * xp.log(1.0 - p))
        inside = (y_pred > EPSILON) & (y_pred < 1.0 - EPSILON)  # the clip passes no gradient outside
        grad = xp.where(inside, (p - y_true) / (p * (1.0 - p)), 0.0) * (1.0 / _size(p))
        return value, grad

    def backward(self, grad):
        return grad


@REGISTRY.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    """L = -mean over examples of sum_k y_k log p_k, y one-hot (or soft), p = softmax(z).

    From logits: L = -mean sum_k y_k log_softmax(z)_k;  dL/dz = (p sum_k y_k - y) / batch.
    """
    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def logits_forward(self, y_true, z):
        xp = _backend().xp
        n = _per_example_count(z)
        logp = activations.log_softmax(z)
        value = -xp.sum(y_true * logp) / n
        p = xp.exp(logp)
        return value, (p * xp.sum(y_true, axis=-1, keepdims=True) - y_true) * (1.0 / n)

    def forward(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_forward(y_true, y_pred)
        xp = _backend().xp
        n = _per_example_count(y_pred)
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        value = -xp.sum(y_true * xp.log(p)) / n
        inside = (y_pred > EPSILON) & (y_pred < 1.0 - EPSILON)
        return value, xp.where(inside, -y_true / p, 0.0) * (1.0 / n)

    def backward(self, grad):
        return grad


@REGISTRY.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer class labels y (batch,) instead of one-hot."""
    name = "sparse_categorical_crossentropy"
    label_kind = "sparse"

    @staticmethod
    def one_hot(y_true, y_pred):
        xp = _backend().xp
        classes = xp.arange(y_pred.shape[-1], dtype=y_true.dtype)
        labels = xp.reshape(y_true, (*y_pred.shape[:-1], 1))
        return xp.astype(labels == classes, y_pred.dtype)

    def logits_forward(self, y_true, z):
        return super().logits_forward(self.one_hot(y_true, z), z)

    def forward(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_forward(y_true, y_pred)
        return super().forward(self.one_hot(y_true, y_pred), y_pred)


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()

get, serialize, deserialize = REGISTRY.get, REGISTRY.serialize, REGISTRY.deserialize
