"""RMSprop; its update of one parameter is an operation a backend may fuse ("rmsprop")."""
from ..backend import get as _backend, portable_op
from ..errors import check_bool
from .base import REGISTRY, LearningRate, Optimizer, fraction, non_negative


@REGISTRY.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e), Keras' `RMSprop`.

    With learning rate lr, decay rho, momentum mu and gradient g (v, a, m start at 0):

        v <- rho * v + (1 - rho) * g**2
        centered=False:  d = v + epsilon
        centered=True:   a <- rho * a + (1 - rho) * g;   d = v - a**2 + epsilon
        inc = lr * g / sqrt(d)                      <- epsilon INSIDE the square root (Keras, Optax)
        momentum == 0:   w <- w - inc
        momentum > 0:    m <- mu * m + inc;   w <- w - m

    PyTorch's RMSprop puts epsilon outside: lr * g / (sqrt(v) + eps) (centered: sqrt(v - a**2) +
    eps) and keeps lr outside the momentum buffer; the two agree when epsilon is 0 and lr constant.
    Optax's `rmsprop` (eps_in_sqrt=True, the default) is this form.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        rho: the decay of the moving average of squared gradients, in [0, 1). Default 0.9.
        momentum: a float in [0, 1). Default 0.0.
        epsilon: non-negative float for numerical stability. Default 1e-7.
        centered: whether to divide by the estimated variance of the gradient rather than its
            second moment (more stable, slower). Default False.
        {base_args}

    Example:
        model.compile(optimizer=pn.optimizers.RMSprop(learning_rate=1e-3, rho=0.9), loss="mse")
    """

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = fraction("rho", rho)
        self.momentum = fraction("momentum", momentum)
        self.epsilon = non_negative("epsilon", epsilon)
        self.centered = check_bool("centered", centered)

    def _slot_names(self):
        return (("velocity",) + (("average_gradient",) if self.centered else ())
                + (("momentum",) if self.momentum > 0 else ()))

    def _update_is_one_operation(self):
        return True

    def _update_leaf(self, p, g, slots, lr, t):
        p, v, a, m = _backend().op("rmsprop")(p, g, slots["velocity"], slots.get("average_gradient"),
                                              slots.get("momentum"), lr, self.rho, self.momentum, self.epsilon)
        new = {"velocity": v, "average_gradient": a, "momentum": m}
        return p, {name: new[name] for name in self._slot_names()}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


@portable_op("rmsprop")
def _rmsprop(p, g, v, a, m, lr, rho, momentum, epsilon):
    """RMSprop's update of one parameter: (new p, new v, new a, new m); the average gradient a is
    None unless centered, the momentum m None unless momentum > 0 (and so are their new values)."""
    v = rho * v + (1.0 - rho) * (g * g)
    if a is not None:
        a = rho * a + (1.0 - rho) * g
        denominator = v - a * a + epsilon
    else:
        denominator = v + epsilon
    increment = lr * g / _backend().xp.sqrt(denominator)
    if m is not None:
        m = momentum * m + increment
        return p - m, v, a, m
    return p - increment, v, a, m
