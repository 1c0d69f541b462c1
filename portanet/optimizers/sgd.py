"""Stochastic gradient descent, with momentum and Nesterov momentum."""
from ..errors import check_bool
from .base import REGISTRY, LearningRate, Optimizer, fraction


@REGISTRY.register("sgd")
class SGD(Optimizer):
    """Gradient descent with optional momentum and Nesterov momentum (Keras `SGD`).

    With learning rate lr, momentum mu and gradient g:

        momentum == 0:   w <- w - lr * g
        momentum > 0:    m <- mu * m - lr * g                       (m starts at 0)
                         w <- w + m                                  (nesterov=False)
                         w <- w + mu * m - lr * g                    (nesterov=True, with the new m)

    This is Keras' form, with lr inside the velocity. PyTorch keeps b <- mu * b + g and does
    w <- w - lr * b (Nesterov: w <- w - lr * (g + mu * b)); the two are equal (m = -lr * b) while
    lr is constant and differ after the learning rate changes. `weight_decay` is decoupled (Keras):
    w <- w - lr * weight_decay * w before the step; without momentum this equals PyTorch's coupled
    `weight_decay` (g + weight_decay * w), with momentum it does not.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.01.
        momentum: a float in [0, 1) that accelerates descent in the relevant direction and
            dampens oscillations. Default 0.0 (plain gradient descent).
        nesterov: whether to apply Nesterov momentum. Default False.
        {base_args}

    Example:
        opt = pn.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    """

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = fraction("momentum", momentum)
        self.nesterov = check_bool("nesterov", nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum > 0 else ()

    def _update_leaf(self, p, g, slots, lr, t):
        if self.momentum == 0:
            return p - lr * g, {}
        mu = self.momentum
        m = mu * slots["momentum"] - lr * g
        if self.nesterov:
            return p + (mu * m - lr * g), {"momentum": m}
        return p + m, {"momentum": m}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

