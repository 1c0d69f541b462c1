"""Adagrad."""
from ..backend import get as _backend
from .base import REGISTRY, LearningRate, Optimizer, non_negative


@REGISTRY.register("adagrad")
class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, JMLR 2011), Keras' `Adagrad`.

    With learning rate lr and gradient g (the accumulator starts at initial_accumulator_value):

        s <- s + g**2
        w <- w - lr * g / sqrt(s + epsilon)         <- epsilon INSIDE the square root (Keras, Optax)

    PyTorch's Adagrad uses lr * g / (sqrt(s) + eps) and starts s at 0 by default; with its
    `initial_accumulator_value` set to ours and eps = 0 (ours too) the two agree.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        initial_accumulator_value: the accumulators' starting value, non-negative. Default 0.1.
        epsilon: non-negative float for numerical stability. Default 1e-7.
        {base_args}
    """

    def __init__(self, learning_rate: LearningRate = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = non_negative("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.epsilon = non_negative("epsilon", epsilon)

    def _slot_names(self):
        return ("accumulator",)

    def _init_slot(self, name, p):
        return _backend().xp.full_like(p, self.initial_accumulator_value)

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        s = slots["accumulator"] + g * g
        return p - lr * g / xp.sqrt(s + self.epsilon), {"accumulator": s}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}

