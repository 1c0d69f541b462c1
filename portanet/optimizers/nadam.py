"""Nadam."""
import math

from ..backend import get as _backend
from .base import REGISTRY, LearningRate, Optimizer, fraction, non_negative, one_minus_power

_LOG_MOMENTUM_DECAY = math.log(0.96)  # Dozat's momentum schedule, psi = 0.004 per 250 steps: 0.96


@REGISTRY.register("nadam")
class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum (Dozat, ICLR 2016 workshop), Keras' `Nadam`.

    With Keras' momentum schedule, learning rate lr, gradient g and t = step + 1 (m, v start at
    0, the product P at 1):

        mu_t = beta_1 * (1 - 0.5 * 0.96**t)          the momentum schedule
        P    <- P * mu_t                             P = mu_1 * ... * mu_t (state "u_product")
        m    <- beta_1 * m + (1 - beta_1) * g
        v    <- beta_2 * v + (1 - beta_2) * g**2
        m_hat = mu_{t+1} * m / (1 - P * mu_{t+1}) + (1 - mu_t) * g / (1 - P)
        v_hat = v / (1 - beta_2**t)
        w    <- w - lr * m_hat / (sqrt(v_hat) + epsilon)

    P is one 0-d array for the whole optimizer (Keras' `_u_product` variable), kept in the state
    beside "step" and updated once per step before the parameters. PyTorch's `NAdam` is this rule
    with momentum_decay=1 (its default 0.004 gives 0.96**(0.004 t)); Optax's `nadam` has no
    momentum schedule (mu_t = beta_1) and is a different rule. 1 - beta_2**t is computed as
    -expm1(t * log(beta_2)).

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        beta_1: the decay of the first-moment estimate, in [0, 1). Default 0.9.
        beta_2: the decay of the second-moment estimate, in [0, 1). Default 0.999.
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

    def _momentum_schedule(self, t):
        """mu_t = beta_1 * (1 - 0.5 * 0.96**t) for a float array t."""
        return self.beta_1 * (1.0 - 0.5 * _backend().xp.exp(t * _LOG_MOMENTUM_DECAY))

    def _slot_names(self):
        return ("momentum", "velocity")

    def _scalar_names(self):
        return ("u_product",)

    def _init_scalar(self, name, dtype):
        return _backend().xp.asarray(1.0, dtype=dtype)

    def _update_scalars(self, scalars, t):
        return {"u_product": scalars["u_product"] * self._momentum_schedule(t)}

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        b1, b2 = self.beta_1, self.beta_2
        mu_t, mu_next = self._momentum_schedule(t), self._momentum_schedule(t + 1.0)
        product = slots["u_product"]  # mu_1 * ... * mu_t
        m = b1 * slots["momentum"] + (1.0 - b1) * g
        v = b2 * slots["velocity"] + (1.0 - b2) * (g * g)
        m_hat = (mu_next / (1.0 - product * mu_next)) * m + ((1.0 - mu_t) / (1.0 - product)) * g
        v_hat = v / one_minus_power(b2, t)
        return p - lr * m_hat / (xp.sqrt(v_hat) + self.epsilon), {"momentum": m, "velocity": v}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
