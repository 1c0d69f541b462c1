"""Adamax."""
from ..backend import get as _backend
from .base import REGISTRY, LearningRate, Optimizer, fraction, non_negative, one_minus_power


@REGISTRY.register("adamax")
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, ICLR 2015, section 7.1: Adam with the infinity norm), Keras' `Adamax`.

    With learning rate lr, gradient g and t = step + 1 (m and u start at 0):

        m <- beta_1 * m + (1 - beta_1) * g
        u <- max(beta_2 * u, |g|)
        w <- w - lr * m / ((1 - beta_1**t) * (u + epsilon))

    Keras' slot names: "momentum" (m) and "norm" (u). PyTorch's `Adamax` and Optax's `adamax`
    put epsilon inside the maximum, u <- max(beta_2 * u, |g| + epsilon), and divide by u: the same
    as this for epsilon = 0. 1 - beta_1**t is computed as -expm1(t * log(beta_1)).

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        beta_1: the decay of the first-moment estimate, in [0, 1). Default 0.9.
        beta_2: the decay of the infinity norm, in [0, 1). Default 0.999.
        epsilon: non-negative float for numerical stability. Default 1e-7.
        {base_args}
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = fraction("beta_1", beta_1)
        self.beta_2 = fraction("beta_2", beta_2)
        self.epsilon = non_negative("epsilon", epsilon)

    def _slot_names(self):
        return ("momentum", "norm")

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        b1 = self.beta_1
        m = b1 * slots["momentum"] + (1.0 - b1) * g
        u = xp.maximum(self.beta_2 * slots["norm"], xp.abs(g))
        step_size = lr / one_minus_power(b1, t)
        return p - step_size * m / (u + self.epsilon), {"momentum": m, "norm": u}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
