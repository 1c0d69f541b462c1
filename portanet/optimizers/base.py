"""The optimizer base class: the state layout, clipping, weight decay, the learning rate and
serialization that every optimizer shares (the rules are in the sibling modules)."""
import math

from .. import schedules as _schedules
from ..backend import get as _backend
from ..errors import InvalidTypeError, check_number, invalid, is_number
from ..registry import Registry, Serializable
from ..schedules import LearningRateSchedule
from ..tree import tree_leaves, tree_map, tree_unflatten

LearningRate = float | LearningRateSchedule

_SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    "constructor argument, hence its learning rate is not settable. If you need the learning rate "
    "to be settable, you should instantiate the optimizer with a float `learning_rate` argument.")


# ---------------------------------------------------------------------------------------------
# argument checks (at construction; never on arrays)

def non_negative(name, value, expected="a non-negative float"):
    return check_number(name, value, expected)


def fraction(name, value):
    number = check_number(name, value, "a float in [0, 1)")
    if number >= 1.0:
        raise invalid(name, "a float in [0, 1)", value)
    return number


def positive_or_none(name, value):
    return None if value is None else check_number(name, value, "None or a positive float", strict_minimum=True)


def check_learning_rate(value):
    if isinstance(value, LearningRateSchedule):
        return value
    expected = "a non-negative float or a portanet.schedules.LearningRateSchedule"
    if not is_number(value):
        raise invalid("learning_rate", expected, value, InvalidTypeError)
    return non_negative("learning_rate", value)


# ---------------------------------------------------------------------------------------------
# array helpers

def cast(x, dtype):
    return x if x.dtype == dtype else _backend().xp.astype(x, dtype)


def one_minus_power(beta, t):
    """1 - beta**t for a float array t, as -expm1(t * log(beta)): accurate for beta near 1."""
    xp = _backend().xp
    if beta == 0.0:
        return xp.ones_like(t)
    return -xp.expm1(t * math.log(beta))


BASE_ARGS = """weight_decay: decoupled weight decay: w <- w - lr * weight_decay * w before each step,
            or None (none, the default).
        clipnorm: clip each gradient to this L2 norm, or None (the default).
        clipvalue: clip each gradient element to [-clipvalue, clipvalue], or None (the default).
        global_clipnorm: clip all gradients together to this L2 norm, or None (the default).
            At most one of the three clips is set.
        name: the optimizer's name. Default None: the class name in lower case."""


class Optimizer(Serializable):
    """Base class. Subclasses define `_slot_names()`, `_init_slot(name, p)` and
    `_update_leaf(p, g, slots, lr, t)` (one parameter; `lr` and `t = step + 1` are 0-d arrays of
    the parameter's dtype; returns the new parameter and the dict of its new slots).

    An optimizer with state of its own, not per parameter (Nadam's momentum-cache product), also
    defines `_scalar_names()`, `_init_scalar(name, dtype)` and `_update_scalars(scalars, t)`: the
    scalars are 0-d arrays of the state's dtype at the top of the state (next to "step"), updated
    once per step before the parameters; `_update_leaf` finds their new values in `slots`, cast
    to the parameter's dtype.

    Every optimizer takes these arguments (Keras 2's `lr` and `decay` are refused, naming the
    Keras 3 argument to use instead):

    Args:
        learning_rate: a non-negative float or a `pn.optimizers.schedules.LearningRateSchedule`
            (evaluated at every step; the rate then cannot be set).
        {base_args}
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:   # the arguments every optimizer takes, written once
            cls.__doc__ = cls.__doc__.replace("{base_args}", BASE_ARGS)

    def __new__(cls, *args, **kwargs):
        """Keras 2's names, refused with the one to use (before __init__ reports a bare TypeError)."""
        renamed = {"lr": "learning_rate", "decay": "a schedule (portanet.optimizers.schedules) as learning_rate"}
        for old, new in renamed.items():
            if old in kwargs:
                raise InvalidTypeError(
                    f"Invalid argument `{old}` for {cls.__name__}. Expected {new}=... (Keras 3's name). "
                    f"Received: {old}={kwargs[old]!r}")
        return super().__new__(cls)

    def __init__(self, learning_rate: LearningRate, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None):
        self.learning_rate = check_learning_rate(learning_rate)
        self.weight_decay = None if weight_decay is None else non_negative("weight_decay", weight_decay)
        self.clipnorm = positive_or_none("clipnorm", clipnorm)
        self.clipvalue = positive_or_none("clipvalue", clipvalue)
        self.global_clipnorm = positive_or_none("global_clipnorm", global_clipnorm)
        clips = [(k, v) for k, v in (("clipnorm", self.clipnorm), ("clipvalue", self.clipvalue),
                                    ("global_clipnorm", self.global_clipnorm)) if v is not None]
        if len(clips) > 1:
            (first, first_value), (second, second_value) = clips[:2]
            raise invalid(second, f"None: only one of `clipnorm`, `clipvalue` and `global_clipnorm` "
                          f"can be set, and {first}={first_value} is set", second_value)
        if name is not None and not isinstance(name, str):
            raise invalid("name", "None or a str", name, InvalidTypeError)
        self.name = name if name is not None else type(self).__name__.lower()

    # -- subclass hooks ------------------------------------------------------------------------
    def _slot_names(self):
        return ()

    def _init_slot(self, name, p):
        return _backend().xp.zeros_like(p)

    def _update_leaf(self, p, g, slots, lr, t):
        raise NotImplementedError

    def _update_is_one_operation(self):
        """Whether `_update_leaf` is a single portable operation (Adam's "adam", RMSprop's
        "rmsprop"), which a backend may run as one compiled pass over a whole parameter (NumPy's
        `foreach`, with compiled kernels)."""
        return False

    def _scalar_names(self):
        return ()

    def _init_scalar(self, name, dtype):
        raise NotImplementedError

    def _update_scalars(self, scalars, t):
        """The scalars' values for update number t (a 0-d array of the state's float dtype)."""
        return scalars

    # -- the pure functions ----------------------------------------------------------------------
    @property
    def uses_schedule(self):
        """True when `learning_rate` is a schedule (then the rate cannot be set)."""
        return isinstance(self.learning_rate, LearningRateSchedule)

    def init(self, params: dict) -> dict:
        """The initial state for `params` (a plain nested dict of arrays).

        Returns:
            The state: a plain dict of arrays (its layout is in the module docstring).
        """
        xp = _backend().xp
        dtype = self._state_dtype(params)
        step = xp.asarray(0, dtype=xp.int32)
        state = {"step": step, "learning_rate": self._rate_at(step, dtype)}
        for name in self._scalar_names():
            state[name] = self._init_scalar(name, dtype)
        for slot in self._slot_names():
            state[slot] = tree_map(lambda p, slot=slot: self._init_slot(slot, p), params)
        return state

    def update(self, params: dict, grads: dict, state: dict) -> tuple[dict, dict]:
        """One step of the rule with `grads` (a tree matched to `params` by key); pure.

        Returns:
            `(new_params, new_state)`; the inputs are not modified.
        """
        step = state["step"]
        lr = state["learning_rate"]
        if self.uses_schedule:
            lr = self.learning_rate(step, dtype=lr.dtype)
        grads = self._clip_gradients(grads, lr.dtype)
        t = step + 1
        names = self._slot_names()
        scalar_names = self._scalar_names()
        scalars = self._update_scalars({n: state[n] for n in scalar_names},
                                       _backend().xp.astype(t, lr.dtype)) if scalar_names else {}
        casts = {}

        def per_dtype(dtype):
            if dtype not in casts:
                casts[dtype] = (cast(lr, dtype), _backend().xp.astype(t, dtype),
                                {n: cast(s, dtype) for n, s in scalars.items()})
            return casts[dtype]

        def leaf(p, g, *slots):
            """(new p, *new slots): element-wise in p, g and the slots."""
            lr_p, t_p, scalars_p = per_dtype(p.dtype)
            g = cast(g, p.dtype)
            if self.weight_decay:
                p = p - p * self.weight_decay * lr_p
            new_p, new_slots = self._update_leaf(p, g, {**scalars_p, **dict(zip(names, slots))}, lr_p, t_p)
            return (new_p, *(new_slots[n] for n in names))

        leaf.one_operation = self._update_is_one_operation()
        # one tuple (p, g, *slots) per parameter; grads and slots matched to params by key (the
        # state may hold slots of other parameters too: those of frozen layers, kept as they are)
        columns = list(zip(tree_leaves(params), tree_leaves(grads, params),
                           *(tree_leaves(state[n], params) for n in names)))
        out = _backend().op("foreach")(leaf, columns)  # NumPy: small parameters together, large ones blockwise
        new_params = tree_unflatten(params, [o[0] for o in out])
        new_lr = self.learning_rate(t, dtype=lr.dtype) if self.uses_schedule else lr
        new_state = {"step": t, "learning_rate": new_lr, **scalars}
        for i, n in enumerate(names, start=1):
            new = tree_unflatten(params, [o[i] for o in out])
            new_state[n] = {**state[n], **new} if isinstance(new, dict) else new
        return new_params, new_state

    def extend(self, state, params):
        """`state` with fresh slots (as `init` makes them) for the parameters of `params` (a dict)
        it holds none for: a layer made trainable after training started."""
        names = self._slot_names()
        missing = {k: v for k, v in params.items() if names and k not in state[names[0]]}
        if not missing:
            return state
        fresh = self.init(missing)
        return {**state, **{n: {**state[n], **fresh[n]} for n in names}}

    def learning_rate_value(self, state):
        """The learning rate the next `update` will use: a 0-d array (no host synchronisation)."""
        return state["learning_rate"]

    def with_learning_rate(self, state, value):
        """A new state whose learning rate is `value` (a Python number or a 0-d array); pure, so
        it can run inside a compiled function. Raises when `learning_rate` is a schedule."""
        if self.uses_schedule:
            raise InvalidTypeError(_SCHEDULE_NOT_SETTABLE)
        xp = _backend().xp
        current = state["learning_rate"]
        if is_number(value):
            value = xp.asarray(non_negative("learning_rate", value), dtype=current.dtype)
        elif hasattr(value, "dtype") and hasattr(value, "shape"):
            value = xp.reshape(cast(value, current.dtype), ())
        else:
            raise invalid("learning_rate", "a non-negative float or a 0-d array", value, InvalidTypeError)
        new_state = dict(state)
        new_state["learning_rate"] = value
        return new_state

    # -- internals -------------------------------------------------------------------------------
    def _state_dtype(self, params):
        xp = _backend().xp
        for leaf in tree_leaves(params):
            if hasattr(leaf, "dtype") and xp.isdtype(leaf.dtype, "real floating"):
                return leaf.dtype
        return _backend().float_dtype()

    def _rate_at(self, step, dtype):
        if self.uses_schedule:
            return self.learning_rate(step, dtype=dtype)
        return _backend().xp.asarray(self.learning_rate, dtype=dtype)

    def _clip_gradients(self, grads, dtype):
        xp = _backend().xp
        if self.clipnorm is not None:
            c = self.clipnorm
            return tree_map(lambda g: (g * c) / xp.clip(xp.sqrt(xp.sum(g * g)), min=c), grads)
        if self.global_clipnorm is not None:
            leaves = tree_leaves(grads)
            if not leaves:
                return grads
            c = self.global_clipnorm
            total = cast(xp.sum(leaves[0] * leaves[0]), dtype)
            for g in leaves[1:]:
                total = total + cast(xp.sum(g * g), dtype)
            norm = xp.sqrt(total)
            # min(1, c / norm); 1 for a zero norm; NaN for an inf/NaN norm (as Keras)
            scale = c / xp.clip(norm, min=c) + (norm - norm)
            return tree_map(lambda g: g * cast(scale, g.dtype), grads)
        if self.clipvalue is not None:
            v = self.clipvalue
            return tree_map(lambda g: xp.clip(g, min=-v, max=v), grads)
        return grads

    # -- serialization -----------------------------------------------------------------------------
    def get_config(self):
        """JSON-able dict of the constructor arguments (a schedule as {"class_name", "config"})."""
        lr = self.learning_rate
        return {
            "name": self.name,
            "learning_rate": _schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    # Keras writes these into optimizer configs; accepted only at the values that mean "off"
    _KERAS_ONLY = {"use_ema": (False,), "ema_momentum": None, "ema_overwrite_frequency": (None,),
                   "loss_scale_factor": (None,), "gradient_accumulation_steps": (None,)}

    @classmethod
    def from_config(cls, config):
        """The optimizer `get_config()` describes (Keras optimizer configs are accepted too)."""
        if not isinstance(config, dict):
            raise invalid("config", "a dict", config, InvalidTypeError)
        config = dict(config)
        for key, allowed in cls._KERAS_ONLY.items():
            if key in config:
                value = config.pop(key)
                if allowed is not None and value not in allowed:
                    raise invalid(key, f"{allowed[0]} (not supported by portanet)", value)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


REGISTRY = Registry("optimizer", Optimizer)

# the base class's own docstring (__init_subclass__ fills in its subclasses')
Optimizer.__doc__ = Optimizer.__doc__.replace("{base_args}", BASE_ARGS)
