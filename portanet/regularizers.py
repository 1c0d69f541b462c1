"""Weight penalties added to the loss (Keras semantics): l1 adds f*sum(|w|), l2 adds f*sum(w**2).

`penalty(w)` is the scalar added to the loss, `gradient(w)` its derivative, added to the weight's
gradient in the training step.
"""
import math

from .backend import get as _backend
from .errors import InvalidTypeError, invalid


def _factor(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise invalid(name, "a finite non-negative float", value)
    return float(value)


class Regularizer:
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def penalty(self, w):
        xp = _backend().xp
        total = 0.0
        if self.l1:
            total = total + self.l1 * xp.sum(xp.abs(w))
        if self.l2:
            total = total + self.l2 * xp.sum(w * w)
        return total

    def gradient(self, w):
        xp = _backend().xp
        grad = xp.zeros_like(w)
        if self.l1:
            grad = grad + self.l1 * xp.sign(w)
        if self.l2:
            grad = grad + (2.0 * self.l2) * w
        return grad

    __call__ = penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1=0.01):
    return Regularizer(l1=l1)


def l2(l2=0.01):
    return Regularizer(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    return Regularizer(l1=l1, l2=l2)


L1, L2, L1L2 = l1, l2, l1_l2


def get(identifier):
    """A Regularizer from None, "l1"/"l2"/"l1_l2" (default factors), a config dict, or a Regularizer."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        makers = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
        if identifier not in makers:
            raise invalid("regularizer", f"one of {sorted(makers)}", identifier)
        return makers[identifier]()
    if isinstance(identifier, dict):
        return Regularizer(**identifier)
    raise invalid("regularizer", "None, a name or a portanet.regularizers.Regularizer", identifier,
                  InvalidTypeError)
