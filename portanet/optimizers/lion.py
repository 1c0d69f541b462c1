"""Lion."""
from ..backend import get as _backend
from ..errors import check_number, invalid
from .base import REGISTRY, LearningRate, Optimizer, fraction

_BETA_1 = "a float in (0, 1] (beta_1=0 makes Lion signSGD)"


def _beta_1(value):
    number = check_number("beta_1", value, _BETA_1, strict_minimum=True)
    if number > 1.0:
        raise invalid("beta_1", _BETA_1, value)
    return number


@REGISTRY.register("lion")
class Lion(Optimizer):
    """Lion, EvoLved Sign Momentum (Chen et al., 2023), Keras' `Lion`.

    With learning rate lr, gradient g and sign(0) = 0 (m starts at 0):

        w <- w - lr * sign(beta_1 * m + (1 - beta_1) * g)      (m before this step)
        m <- beta_2 * m + (1 - beta_2) * g

    Every coordinate moves by exactly lr (or 0), so Lion wants a learning rate 3-10 times smaller
    than Adam's. Keras refuses beta_1 outside (0, 1], as here. Optax's `lion` is this rule; its
    default weight_decay is 1e-3 (Keras' None), applied as the same decoupled decay.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        beta_1: the interpolation between momentum and gradient in the update, in (0, 1].
            Default 0.9.
        beta_2: the decay of the momentum, in [0, 1). Default 0.99.
        {base_args}

    Example:
        opt = pn.optimizers.Lion(learning_rate=1e-4, weight_decay=0.01)
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = _beta_1(beta_1)
        self.beta_2 = fraction("beta_2", beta_2)

    def _slot_names(self):
        return ("momentum",)

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        b1, b2, m = self.beta_1, self.beta_2, slots["momentum"]
        direction = xp.sign(b1 * m + (1.0 - b1) * g)
        return p - lr * direction, {"momentum": b2 * m + (1.0 - b2) * g}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
