"""Adam and AdamW; Adam's update of one parameter is an operation a backend may fuse ("adam")."""
from ..backend import get as _backend, portable_op
from ..errors import InvalidTypeError, check_bool, invalid
from .base import REGISTRY, LearningRate, Optimizer, fraction, non_negative, one_minus_power


@REGISTRY.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba, ICLR 2015), with Keras' arguments and defaults.

    With learning rate lr, gradient g and t = step + 1 (m, v, v_max start at 0):

        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g**2
        amsgrad=True:  v_max <- max(v_max, v), and v_max replaces v below (Reddi et al. 2018; the
                       maximum of the raw v, as PyTorch and Keras; Optax takes it of v_hat)

    epsilon_hat=False (default; Kingma & Ba Algorithm 1, PyTorch, Optax):

        m_hat = m / (1 - beta_1**t),   v_hat = v / (1 - beta_2**t)
        w <- w - lr * m_hat / (sqrt(v_hat) + epsilon)

    epsilon_hat=True (Keras' form, the "epsilon hat" of Kingma & Ba section 2):

        alpha_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w <- w - alpha_t * m / (sqrt(v) + epsilon)

    The two are equal for epsilon = 0; otherwise the Keras form uses an effective epsilon of
    epsilon * sqrt(1 - beta_2**t), which is much smaller in the first steps. 1 - beta**t is
    computed as -expm1(t * log(beta)), exact to rounding even in float32.

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        beta_1: the decay of the first-moment estimate m, in [0, 1). Default 0.9.
        beta_2: the decay of the second-moment estimate v, in [0, 1). Default 0.999.
        epsilon: non-negative float for numerical stability. Default 1e-7.
        amsgrad: whether to apply the AMSGrad variant. Default False.
        {base_args}
        epsilon_hat: whether to use Keras' form of epsilon (above). Default False.

    Example:
        schedule = pn.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1000, decay_rate=0.9)
        model.compile(optimizer=pn.optimizers.Adam(learning_rate=schedule), loss="mse")
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None,
                 epsilon_hat: bool = False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = fraction("beta_1", beta_1)
        self.beta_2 = fraction("beta_2", beta_2)
        self.epsilon = non_negative("epsilon", epsilon)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.epsilon_hat = check_bool("epsilon_hat", epsilon_hat)

    def _slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def _update_is_one_operation(self):
        return not self.amsgrad

    def _update_leaf(self, p, g, slots, lr, t):
        b1, b2, epsilon, epsilon_hat = self.beta_1, self.beta_2, self.epsilon, self.epsilon_hat
        correction_1, correction_2 = one_minus_power(b1, t), one_minus_power(b2, t)
        if self.amsgrad:
            m, v = _adam_moments(g, slots["momentum"], slots["velocity"], b1, b2)
            v_max = _backend().xp.maximum(slots["velocity_hat"], v)
            p = _adam_step(p, m, v_max, lr, correction_1, correction_2, epsilon, epsilon_hat)
            return p, {"momentum": m, "velocity": v, "velocity_hat": v_max}
        p, m, v = _backend().op("adam")(p, g, slots["momentum"], slots["velocity"], lr, correction_1, correction_2,
                                        b1, b2, epsilon, epsilon_hat)   # CuPy: one kernel
        return p, {"momentum": m, "velocity": v}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad, "epsilon_hat": self.epsilon_hat}


def _adam_moments(g, m, v, beta_1, beta_2):
    return beta_1 * m + (1.0 - beta_1) * g, beta_2 * v + (1.0 - beta_2) * (g * g)


def _adam_step(p, m, v, lr, correction_1, correction_2, epsilon, epsilon_hat):
    xp = _backend().xp
    if epsilon_hat:
        alpha = lr * xp.sqrt(correction_2) / correction_1
        return p - alpha * m / (xp.sqrt(v) + epsilon)
    m_hat = m / correction_1
    v_hat = v / correction_2
    return p - lr * m_hat / (xp.sqrt(v_hat) + epsilon)


@portable_op("adam")
def _adam(p, g, m, v, lr, correction_1, correction_2, beta_1, beta_2, epsilon, epsilon_hat):
    """Adam's update of one parameter, amsgrad off: (new p, new m, new v)."""
    m, v = _adam_moments(g, m, v, beta_1, beta_2)
    return _adam_step(p, m, v, lr, correction_1, correction_2, epsilon, epsilon_hat), m, v


@REGISTRY.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, ICLR 2019), Keras' `AdamW`:

        w <- w - lr * weight_decay * w,   then the Adam step above (same epsilon forms).

    This equals PyTorch's `AdamW` (w *= 1 - lr * weight_decay) and Optax's `adamw`. The default
    weight_decay is Keras' 0.004 (PyTorch's is 0.01).

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`.
            Default 0.001.
        weight_decay: non-negative float, the decoupled decay (not None). Default 0.004.
        beta_1, beta_2, epsilon, amsgrad, epsilon_hat: as Adam's (0.9, 0.999, 1e-7, False, False).
        clipnorm, clipvalue, global_clipnorm: gradient clipping as Adam's. Default None.
        name: the optimizer's name. Default None: "adamw".

    Example:
        opt = pn.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
    """

    def __init__(self, learning_rate: LearningRate = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None,
                 epsilon_hat: bool = False):
        if weight_decay is None:
            raise invalid("weight_decay", "a non-negative float", weight_decay, InvalidTypeError)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         epsilon_hat=epsilon_hat)

