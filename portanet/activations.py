"""Activation functions with their derivatives.

Each activation is an object: `act(z)` is the forward pass and `act.backward(dy, z, y)` returns
dL/dz given dL/dy, the pre-activation z and the output y = act(z) (whichever is cheaper to use).
"""

from .backend import get as _backend
from .errors import InvalidTypeError, invalid


class Activation:
    name = None

    def __call__(self, z):
        raise NotImplementedError

    def backward(self, dy, z, y):
        raise NotImplementedError

    def get_config(self):
        return self.name

    def __repr__(self):
        return f"<activation {self.name}>"


class Linear(Activation):
    name = "linear"

    def __call__(self, z):
        return z

    def backward(self, dy, z, y):
        return dy


class ReLU(Activation):
    name = "relu"

    def __call__(self, z):
        return _backend().xp.maximum(z, 0.0)

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, 0.0)


class LeakyReLU(Activation):
    """y = z for z > 0, negative_slope * z otherwise (Keras default slope 0.2)."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = negative_slope

    def __call__(self, z):
        return _backend().xp.where(z > 0, z, self.negative_slope * z)

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, self.negative_slope * dy)


class ELU(Activation):
    """y = z for z > 0, alpha * (exp(z) - 1) otherwise; dy/dz = y + alpha there."""
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def __call__(self, z):
        xp = _backend().xp
        return xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0.0)))

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, dy * (y + self.alpha))


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-z)), computed without overflow for large |z|; dy/dz = y (1 - y)."""
    name = "sigmoid"

    def __call__(self, z):
        xp = _backend().xp
        e = xp.exp(-xp.abs(z))  # in (0, 1]: never overflows
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def backward(self, dy, z, y):
        return dy * y * (1.0 - y)


class Tanh(Activation):
    name = "tanh"

    def __call__(self, z):
        return _backend().xp.tanh(z)

    def backward(self, dy, z, y):
        return dy * (1.0 - y * y)


class Softplus(Activation):
    """y = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)); dy/dz = sigmoid(z)."""
    name = "softplus"

    def __call__(self, z):
        xp = _backend().xp
        return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, dy, z, y):
        return dy * sigmoid(z)


class Softmax(Activation):
    """y_i = exp(z_i - max z) / sum_j exp(z_j - max z) along `axis`.

    Its Jacobian is diag(y) - y y^T, so the vector-Jacobian product is y * (dy - sum(dy * y)).
    """
    name = "softmax"

    def __init__(self, axis=-1):
        self.axis = axis

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

ALL = {a.name: a for a in (linear, relu, leaky_relu, elu, sigmoid, tanh, softplus, softmax)}


def get(identifier):
    """An Activation from a name ("relu"), an Activation, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        if identifier not in ALL:
            raise invalid("activation", f"one of {sorted(ALL)}", identifier)
        return ALL[identifier]
    if callable(identifier):
        raise InvalidTypeError(
            f"Invalid value for `activation`. Expected a name or a portanet.activations.Activation "
            f"(which knows its derivative; subclass Activation and define __call__ and backward for "
            f"a custom one). Received: activation={identifier!r}")
    raise invalid("activation", f"a name (one of {sorted(ALL)}) or an Activation", identifier,
                  InvalidTypeError)


__all__ = ["Activation", "get", "log_softmax", *ALL]
