"""Weight penalties added to the loss (Keras semantics): l1 adds f*sum(|w|), l2 adds f*sum(w**2).

`penalty(w)` is the scalar added to the loss, `gradient(w)` its derivative, added to the weight's
gradient in the training step.
"""
from .backend import get as _backend
from .errors import check_number
from .registry import Registry, Serializable


class Regularizer(Serializable):
    """Base class: `penalty(w)` (a scalar) and `gradient(w)` (shaped as w)."""

    def penalty(self, w):
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError

    def __call__(self, w):
        return self.penalty(w)


def _legacy(config):
    """Files written before version 0.2 stored {"l1": ..., "l2": ...}."""
    if isinstance(config, dict) and "class_name" not in config and set(config) <= {"l1", "l2"}:
        return {"class_name": "L1L2", "config": config}
    return config


REGISTRY = Registry("regularizer", Regularizer, legacy=_legacy)


@REGISTRY.register()
class L1L2(Regularizer):
    """L1 and L2 penalty: penalty(w) = l1 * sum(|w|) + l2 * sum(w**2);  gradient(w) = l1 * sign(w) + 2 * l2 * w.

    Args:
        l1: the L1 factor, a finite non-negative float. Default 0.0.
        l2: the L2 factor, a finite non-negative float. Default 0.0.

    Example:
        pn.layers.Dense(64, kernel_regularizer=pn.regularizers.L1L2(l1=1e-5, l2=1e-4))
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = check_number("l1", l1, "a finite non-negative float")
        self.l2 = check_number("l2", l2, "a finite non-negative float")

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

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1=0.01):
    """An L1 penalty, l1 * sum(|w|) (Keras' `L1`; also `L1`).

    Args:
        l1: the factor. Default 0.01.

    Returns:
        `L1L2(l1=l1)`.
    """
    return L1L2(l1=l1)


def l2(l2=0.01):
    """An L2 penalty, l2 * sum(w**2) (Keras' `L2`; also `L2`).

    Args:
        l2: the factor. Default 0.01.

    Returns:
        `L1L2(l2=l2)`.

    Example:
        pn.layers.Dense(64, kernel_regularizer=pn.regularizers.l2(1e-4))   # or kernel_regularizer="l2"
    """
    return L1L2(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    """Both penalties, l1 * sum(|w|) + l2 * sum(w**2).

    Args:
        l1: the L1 factor. Default 0.01.
        l2: the L2 factor. Default 0.01.

    Returns:
        `L1L2(l1=l1, l2=l2)`.
    """
    return L1L2(l1=l1, l2=l2)


L1, L2 = l1, l2
for _name, _make in (("l1", l1), ("l2", l2), ("l1_l2", l1_l2)):
    REGISTRY.name(_name, _make)
serialize, deserialize = REGISTRY.serialize, REGISTRY.deserialize


def get(identifier):
    """A Regularizer from None (none), a name ("l1", "l2", "l1_l2": factor 0.01), a config or a Regularizer.

    Returns:
        A `Regularizer`, or None for None.
    """
    return None if identifier is None else REGISTRY.get(identifier)
