"""Adadelta."""
from ..backend import get as _backend
from .base import REGISTRY, LearningRate, Optimizer, fraction, non_negative


@REGISTRY.register("adadelta")
class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), Keras' `Adadelta`.

    With learning rate lr, decay rho and gradient g (E[g^2] and E[dx^2] start at 0):

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g**2
        dx       = -sqrt(E[dx^2] + epsilon) / sqrt(E[g^2] + epsilon) * g     (E[dx^2] before this step)
        E[dx^2] <- rho * E[dx^2] + (1 - rho) * dx**2
        w       <- w + lr * dx

    epsilon is inside both square roots (Keras, PyTorch, Optax). Keras' slot names:
    "accumulated_grad" (E[g^2]) and "accumulated_delta_var" (E[dx^2]). Keras' default learning rate
    is 0.001; Zeiler's rule has none (lr = 1, PyTorch's default), and PyTorch's default epsilon is
    1e-6, Optax's rho 0.9 and epsilon 1e-6.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        rho: the decay rate of the two averages, in [0, 1). Default 0.95.
        epsilon: non-negative float for numerical stability. Default 1e-7.
        {base_args}
    """

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = fraction("rho", rho)
        self.epsilon = non_negative("epsilon", epsilon)

    def _slot_names(self):
        return ("accumulated_grad", "accumulated_delta_var")

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        rho, epsilon = self.rho, self.epsilon
        accumulated_grad = rho * slots["accumulated_grad"] + (1.0 - rho) * (g * g)
        delta = -xp.sqrt(slots["accumulated_delta_var"] + epsilon) * g / xp.sqrt(accumulated_grad + epsilon)
        accumulated_delta = rho * slots["accumulated_delta_var"] + (1.0 - rho) * (delta * delta)
        return p + lr * delta, {"accumulated_grad": accumulated_grad, "accumulated_delta_var": accumulated_delta}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
