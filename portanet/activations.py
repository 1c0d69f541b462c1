"""Activation functions with their derivatives.

Each activation is an object: `act(z)` is the forward pass and `act.backward(dy, z, y)` returns
dL/dz given dL/dy, the pre-activation z and the output y = act(z) (whichever is cheaper to use).
"""

from .backend import get as _backend
from .errors import InvalidTypeError
from .registry import Registry, Serializable


class Activation(Serializable):
    """Base class: `name` (Keras' name), `__call__(z)` and `backward(dy, z, y)`."""
    name = None

    def __call__(self, z):
        raise NotImplementedError

    def backward(self, dy, z, y):
        raise NotImplementedError

    def __repr__(self):
        return f"<activation {self.name}>"


REGISTRY = Registry("activation", Activation)


@REGISTRY.register("linear")
class Linear(Activation):
    name = "linear"

    def __call__(self, z):
        return z

    def backward(self, dy, z, y):
        return dy


@REGISTRY.register("relu")
class ReLU(Activation):
    name = "relu"

    def __call__(self, z):
        return _backend().xp.maximum(z, 0.0)

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, 0.0)


@REGISTRY.register("leaky_relu")
class LeakyReLU(Activation):
    """y = z for z > 0, negative_slope * z otherwise (Keras default slope 0.2)."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = negative_slope

    def get_config(self):
        return {"negative_slope": self.negative_slope}

    def __call__(self, z):
        return _backend().xp.where(z > 0, z, self.negative_slope * z)

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, self.negative_slope * dy)


@REGISTRY.register("elu")
class ELU(Activation):
    """y = z for z > 0, alpha * (exp(z) - 1) otherwise; dy/dz = y + alpha there."""
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def get_config(self):
        return {"alpha": self.alpha}

    def __call__(self, z):
        xp = _backend().xp
        return xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0.0)))

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, dy * (y + self.alpha))


@REGISTRY.register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + exp(-z)), computed without overflow for large |z|; dy/dz = y (1 - y)."""
    name = "sigmoid"

    def __call__(self, z):
        xp = _backend().xp
        e = xp.exp(-xp.abs(z))  # in (0, 1]: never overflows
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def backward(self, dy, z, y):
        return dy * y * (1.0 - y)


@REGISTRY.register("tanh")
class Tanh(Activation):
    name = "tanh"

    def __call__(self, z):
        return _backend().xp.tanh(z)

    def backward(self, dy, z, y):
        return dy * (1.0 - y * y)


@REGISTRY.register("softplus")
class Softplus(Activation):
    """y = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)); dy/dz = sigmoid(z)."""
    name = "softplus"

    def __call__(self, z):
        xp = _backend().xp
        return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, dy, z, y):
        return dy * sigmoid(z)


@REGISTRY.register("softmax")
class Softmax(Activation):
    """y_i = exp(z_i - max z) / sum_j exp(z_j - max z) along `axis`.

    Its Jacobian is diag(y) - y y^T, so the vector-Jacobian product is y * (dy - sum(dy * y)).
    """
    name = "softmax"

    def __init__(self, axis=-1):
        self.axis = axis

    def get_config(self):
        return {"axis": self.axis}

    def __call__(self, z):
        xp = _backend().xp
        e = xp.exp(z - xp.max(z, axis=self.axis, keepdims=True))
        return e / xp.sum(e, axis=self.axis, keepdims=True)

    def backward(self, dy, z, y):
        xp = _backend().xp
        return y * (dy - xp.sum(dy * y, axis=self.axis, keepdims=True))


def log_softmax(z, axis=-1):
    """log(softmax(z)), stable: z - max - log(sum(exp(z - max)))."""
    xp = _backend().xp
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
sigmoid = Sigmoid()
tanh = Tanh()
softplus = Softplus()
softmax = Softmax()


def get(identifier):
    """An Activation from a name ("relu"), a serialized config, an Activation, or None (linear)."""
    if identifier is None:
        return Linear()
    if callable(identifier) and not isinstance(identifier, Activation):
        raise InvalidTypeError(
            f"Invalid value for `activation`. Expected a name or a portanet.activations.Activation "
            f"(which knows its derivative; subclass Activation and define __call__ and backward for "
            f"a custom one). Received: activation={identifier!r}")
    return REGISTRY.get(identifier)


serialize, deserialize = REGISTRY.serialize, REGISTRY.deserialize

__all__ = ["Activation", "get", "serialize", "deserialize", "log_softmax", *REGISTRY.names]
