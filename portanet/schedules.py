"""Learning-rate schedules (Keras names, arguments and formulas), usable as `learning_rate=`.

A schedule maps the optimizer's step count (the number of updates already applied: 0 for the
first update, as Keras' `optimizer.iterations`) to a learning rate:

    lr = schedule(step)                  # step: a Python int or an integer array
    lr = schedule(step, dtype=xp.float64)

The result is a 0-d float array (dtype: `dtype`, else the backend's floatx). Every schedule is
written with Array API operations and `xp.where` (no Python branching on array values), so it runs
inside `jax.jit` and the optimizer can evaluate it from the step count kept in its state.

Schedules serialize like Keras ones: `schedule.get_config()` is a JSON-able dict of the
constructor arguments, `Class.from_config(config)` rebuilds it, and `serialize(schedule)` /
`deserialize({"class_name": ..., "config": ...})` wrap the class name around it.
"""
import math

from .backend import get as _backend
from .errors import InvalidTypeError, check_bool, check_number, invalid, is_number
from .registry import Registry, Serializable


def _step_as(step, dtype):
    """The step (Python int or integer array) as a 0-d-or-larger array of float `dtype`."""
    xp = _backend().xp
    if is_number(step):
        return xp.asarray(float(step), dtype=dtype)
    return xp.astype(step, dtype)


def _dtype(dtype):
    b = _backend()
    if dtype is None:
        return b.float_dtype()
    if isinstance(dtype, str):
        return getattr(b.xp, dtype)
    return dtype


class LearningRateSchedule(Serializable):
    """Base class: `schedule(step, dtype=None) -> learning rate array`.

    A subclass defines `__call__(step, dtype=None)` with Array API operations (no Python branching
    on array values) and `get_config()`.
    """

    def __call__(self, step, dtype=None):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


REGISTRY = Registry("schedule", LearningRateSchedule)


@REGISTRY.register()
class ExponentialDecay(LearningRateSchedule):
    """Exponential decay (Keras `ExponentialDecay`):

        lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)

    With `staircase=True` the exponent is `floor(step / decay_steps)` (the rate drops in steps).

    Args:
        initial_learning_rate: the rate at step 0, a non-negative float.
        decay_steps: positive, the steps over which the rate is multiplied by `decay_rate` once.
        decay_rate: non-negative float, the decay per `decay_steps`.
        staircase: whether to decay at discrete intervals. Default False.
        name: the schedule's name. Default "ExponentialDecay".

    Example:
        schedule = pn.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10000, decay_rate=0.9)
        optimizer = pn.optimizers.SGD(learning_rate=schedule)
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = check_number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check_number("decay_steps", decay_steps, "a positive number", strict_minimum=True)
        self.decay_rate = check_number("decay_rate", decay_rate)
        self.staircase = check_bool("staircase", staircase)
        self.name = name

    def __call__(self, step, dtype=None):
        xp = _backend().xp
        dtype = _dtype(dtype)
        p = _step_as(step, dtype) / self.decay_steps
        if self.staircase:
            p = xp.floor(p)
        rate = xp.asarray(self.decay_rate, dtype=dtype)
        return self.initial_learning_rate * xp.pow(rate, p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@REGISTRY.register()
class PiecewiseConstantDecay(LearningRateSchedule):
    """Piecewise constant (Keras `PiecewiseConstantDecay`): with boundaries b_0 < b_1 < ... and
    values v_0, v_1, ... (one more value than boundaries),

        lr(step) = v_0   if step <= b_0
                   v_i   if b_{i-1} < step <= b_i
                   v_n   if step > b_{n-1}

    Args:
        boundaries: a non-decreasing list of finite numbers (ints are compared with the step
            exactly).
        values: a list of non-negative floats, one more than `boundaries`.
        name: the schedule's name. Default "PiecewiseConstant".

    Example:
        schedule = pn.optimizers.schedules.PiecewiseConstantDecay([1000, 2000], [1e-2, 1e-3, 1e-4])
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not all(is_number(b) for b in boundaries):
            raise invalid("boundaries", "a list of numbers", boundaries, InvalidTypeError)
        if not isinstance(values, (list, tuple)) or not all(is_number(v) for v in values):
            raise invalid("values", "a list of numbers", values, InvalidTypeError)
        if len(values) != len(boundaries) + 1:
            raise invalid("values", f"one more value than boundaries ({len(boundaries) + 1} values "
                          f"for {len(boundaries)} boundaries)", values)
        if any(not math.isfinite(b) for b in boundaries) or any(
                b1 < b0 for b0, b1 in zip(boundaries[:-1], boundaries[1:])):
            raise invalid("boundaries", "a non-decreasing list of finite numbers", boundaries)
        for v in values:
            if not math.isfinite(v) or v < 0:
                raise invalid("values", "a list of non-negative floats", values)
        # integer boundaries are compared with the integer step exactly, as Keras does
        self.boundaries = [b if isinstance(b, int) else float(b) for b in boundaries]
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step, dtype=None):
        xp = _backend().xp
        dtype = _dtype(dtype)
        if is_number(step) or any(not isinstance(b, int) for b in self.boundaries):
            step = _step_as(step, dtype)
            boundaries = [float(b) for b in self.boundaries]
        else:
            boundaries = self.boundaries
        result = xp.asarray(self.values[-1], dtype=dtype)
        for boundary, value in zip(reversed(boundaries), reversed(self.values[:-1])):
            result = xp.where(step <= boundary, xp.asarray(value, dtype=dtype), result)
        return result

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


@REGISTRY.register()
class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup (Keras `CosineDecay`, after Loshchilov & Hutter,
    "SGDR", 2017).

    Without warmup (`warmup_target=None`), with s = min(step, decay_steps):

        lr(step) = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With `warmup_target` set, the rate first grows linearly from `initial_learning_rate` to
    `warmup_target` over `warmup_steps` steps, then decays from `warmup_target` as above: with
    s = min(step, warmup_steps + decay_steps),

        lr(step) = initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps
                                                                        if s < warmup_steps
                   warmup_target * ((1 - alpha) * 0.5 * (1 + cos(pi * (s - warmup_steps) / decay_steps)) + alpha)
                                                                        otherwise

    Args:
        initial_learning_rate: the rate at step 0, a non-negative float.
        decay_steps: positive, the steps over which the rate decays.
        alpha: non-negative float, the final rate as a fraction of the rate decayed from.
            Default 0.0.
        name: the schedule's name. Default "CosineDecay".
        warmup_target: the rate reached at the end of the warmup, or None (no warmup, the
            default).
        warmup_steps: non-negative, the steps of the linear warmup. Default 0.

    Example:
        schedule = pn.optimizers.schedules.CosineDecay(0.0, decay_steps=9000, warmup_target=1e-3,
                                                       warmup_steps=1000)
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = check_number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check_number("decay_steps", decay_steps, "a positive number", strict_minimum=True)
        self.alpha = check_number("alpha", alpha)
        self.warmup_target = None if warmup_target is None else check_number("warmup_target", warmup_target)
        self.warmup_steps = check_number("warmup_steps", warmup_steps, "a non-negative number")
        self.name = name

    def _decay(self, s, decay_from, dtype):
        xp = _backend().xp
        cosine = 0.5 * (1.0 + xp.cos(math.pi * (s / self.decay_steps)))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step, dtype=None):
        xp = _backend().xp
        dtype = _dtype(dtype)
        s = _step_as(step, dtype)
        if self.warmup_target is None:
            s = xp.clip(s, max=self.decay_steps)
            return self._decay(s, self.initial_learning_rate, dtype)
        s = xp.clip(s, max=self.decay_steps + self.warmup_steps)
        # max(warmup_steps, 1): with no warmup the first branch is never taken; avoid 0/0 in it
        warmup = (self.initial_learning_rate
                  + (self.warmup_target - self.initial_learning_rate) * (s / max(self.warmup_steps, 1.0)))
        decay = self._decay(s - self.warmup_steps, self.warmup_target, dtype)
        return xp.where(s < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


get, serialize, deserialize = REGISTRY.get, REGISTRY.serialize, REGISTRY.deserialize
