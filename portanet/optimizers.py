"""Optimizers: Keras names, arguments and defaults; Optax-style pure functions (DESIGN.md §4).

    opt = portanet.optimizers.Adam(learning_rate=1e-3)
    state = opt.init(params)                              # plain nested dict of arrays
    params, state = opt.update(params, grads, state)      # pure: new trees, inputs untouched

`params` and `grads` are dicts (nested dicts, lists and tuples allowed) of arrays with the same
structure; `grads` is matched to `params` by key, not by order. `update` has no side effects, no
host synchronisation and no Python branching on array values, so `backend.jit(opt.update)`
compiles it on JAX. Only the current backend's Array API namespace is used.

State layout (every optimizer):

    state["step"]           int32 0-d array: updates applied so far (Keras' `iterations`)
    state["learning_rate"]  0-d float array (dtype of the params): the learning rate the next
                            update uses
    state[<slot>]           one tree shaped like `params` per slot, dtype of each parameter:
                            SGD "momentum" (when momentum > 0); RMSprop "velocity",
                            "average_gradient" (centered), "momentum" (momentum > 0); Adagrad
                            "accumulator"; Adam/AdamW "momentum" (m), "velocity" (v),
                            "velocity_hat" (amsgrad). Keras' slot names.

Because the learning rate lives in the state (not in the compiled code), callbacks change it
between steps without recompiling:

    opt.learning_rate_value(state)        # 0-d array; float(...) it on the host to report it
    state = opt.with_learning_rate(state, 0.5 * opt.learning_rate_value(state))   # pure

When `learning_rate` is a `portanet.schedules.LearningRateSchedule`, every update computes its
rate as `schedule(state["step"])` (step 0 for the first update, as Keras), `state["learning_rate"]`
follows it (`schedule(step)` for the next update) and `with_learning_rate` raises, as Keras'
setter does.

Every step, in Keras' order:
  1. gradients are clipped (at most one of `clipnorm`, `clipvalue`, `global_clipnorm`):
       clipnorm         g <- g * clipnorm / max(||g||, clipnorm)            each tensor on its own
       global_clipnorm  g <- g * global_clipnorm / max(||G||, global_clipnorm)   ||G||: the norm
                        of all gradients together (NaN/inf norms give NaN gradients, as Keras)
       clipvalue        g <- clip(g, -clipvalue, clipvalue)
  2. decoupled weight decay (`weight_decay`, Loshchilov & Hutter): w <- w - lr * weight_decay * w
  3. the optimizer's own rule with the (clipped) gradient, documented on each class.
"""
import math

from . import ops, schedules as _schedules
from .backend import get as _backend
from .errors import InvalidTypeError, invalid
from .schedules import LearningRateSchedule, _boolean, _is_number, _number
from .tree import tree_leaves, tree_map, tree_unflatten

_SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    "constructor argument, hence its learning rate is not settable. If you need the learning rate "
    "to be settable, you should instantiate the optimizer with a float `learning_rate` argument.")


# ---------------------------------------------------------------------------------------------
# argument checks (at construction; never on arrays)

def _non_negative(name, value, expected="a non-negative float"):
    return _number(name, value, expected)


def _fraction(name, value):
    number = _number(name, value, "a float in [0, 1)")
    if number >= 1.0:
        raise invalid(name, "a float in [0, 1)", value)
    return number


def _positive_or_none(name, value):
    return None if value is None else _number(name, value, "None or a positive float", strict_minimum=True)


def _learning_rate(value):
    if isinstance(value, LearningRateSchedule):
        return value
    expected = "a non-negative float or a portanet.schedules.LearningRateSchedule"
    if not _is_number(value):
        raise invalid("learning_rate", expected, value, InvalidTypeError)
    return _non_negative("learning_rate", value)


# ---------------------------------------------------------------------------------------------
# array helpers

def _cast(x, dtype):
    return x if x.dtype == dtype else _backend().xp.astype(x, dtype)


def _one_minus_power(beta, t):
    """1 - beta**t for a float array t, as -expm1(t * log(beta)): accurate for beta near 1."""
    xp = _backend().xp
    if beta == 0.0:
        return xp.ones_like(t)
    return -xp.expm1(t * math.log(beta))


class Optimizer:
    """Base class. Subclasses define `_slot_names()`, `_init_slot(name, p)` and
    `_update_leaf(p, g, slots, lr, t)` (one parameter; `lr` and `t = step + 1` are 0-d arrays of
    the parameter's dtype; returns the new parameter and the dict of its new slots)."""

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        self.learning_rate = _learning_rate(learning_rate)
        self.weight_decay = None if weight_decay is None else _non_negative("weight_decay", weight_decay)
        self.clipnorm = _positive_or_none("clipnorm", clipnorm)
        self.clipvalue = _positive_or_none("clipvalue", clipvalue)
        self.global_clipnorm = _positive_or_none("global_clipnorm", global_clipnorm)
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

    # -- the pure functions ----------------------------------------------------------------------
    @property
    def uses_schedule(self):
        """True when `learning_rate` is a schedule (then the rate cannot be set)."""
        return isinstance(self.learning_rate, LearningRateSchedule)

    def init(self, params):
        """The initial state for `params` (a plain nested dict of arrays; see the module doc)."""
        xp = _backend().xp
        dtype = self._state_dtype(params)
        step = xp.asarray(0, dtype=xp.int32)
        state = {"step": step, "learning_rate": self._rate_at(step, dtype)}
        for slot in self._slot_names():
            state[slot] = tree_map(lambda p, slot=slot: self._init_slot(slot, p), params)
        return state

    def update(self, params, grads, state):
        """One step: returns `(new_params, new_state)`; the inputs are not modified."""
        step = state["step"]
        lr = state["learning_rate"]
        if self.uses_schedule:
            lr = self.learning_rate(step, dtype=lr.dtype)
        grads = self._clip_gradients(grads, lr.dtype)
        t = step + 1
        names = self._slot_names()
        casts = {}

        def per_dtype(dtype):
            if dtype not in casts:
                casts[dtype] = (_cast(lr, dtype), _backend().xp.astype(t, dtype))
            return casts[dtype]

        def leaf(p, g, *slots):
            """(new p, *new slots): element-wise in p, g and the slots."""
            lr_p, t_p = per_dtype(p.dtype)
            g = _cast(g, p.dtype)
            if self.weight_decay:
                p = p - p * self.weight_decay * lr_p
            new_p, new_slots = self._update_leaf(p, g, dict(zip(names, slots)), lr_p, t_p)
            return (new_p, *(new_slots[n] for n in names))

        # one tuple (p, g, *slots) per parameter; grads matched to params by key
        columns = list(zip(tree_leaves(params), tree_leaves(tree_map(lambda _, g: g, params, grads)),
                           *(tree_leaves(state[n]) for n in names)))
        foreach = ops.fast_path("foreach")  # NumPy: small parameters together, large ones blockwise
        out = [leaf(*c) for c in columns] if foreach is None else foreach(leaf, columns)
        new_params = tree_unflatten(params, [o[0] for o in out])
        new_lr = self.learning_rate(t, dtype=lr.dtype) if self.uses_schedule else lr
        new_state = {"step": t, "learning_rate": new_lr}
        for i, n in enumerate(names, start=1):
            new_state[n] = tree_unflatten(params, [o[i] for o in out])
        return new_params, new_state

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
        if _is_number(value):
            value = xp.asarray(_non_negative("learning_rate", value), dtype=current.dtype)
        elif hasattr(value, "dtype") and hasattr(value, "shape"):
            value = xp.reshape(_cast(value, current.dtype), ())
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
            total = _cast(xp.sum(leaves[0] * leaves[0]), dtype)
            for g in leaves[1:]:
                total = total + _cast(xp.sum(g * g), dtype)
            norm = xp.sqrt(total)
            # min(1, c / norm); 1 for a zero norm; NaN for an inf/NaN norm (as Keras)
            scale = c / xp.clip(norm, min=c) + (norm - norm)
            return tree_map(lambda g: g * _cast(scale, g.dtype), grads)
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
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = _fraction("momentum", momentum)
        self.nesterov = _boolean("nesterov", nesterov)

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
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = _fraction("rho", rho)
        self.momentum = _fraction("momentum", momentum)
        self.epsilon = _non_negative("epsilon", epsilon)
        self.centered = _boolean("centered", centered)

    def _slot_names(self):
        return (("velocity",) + (("average_gradient",) if self.centered else ())
                + (("momentum",) if self.momentum > 0 else ()))

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        rho = self.rho
        v = rho * slots["velocity"] + (1.0 - rho) * (g * g)
        new = {"velocity": v}
        if self.centered:
            a = rho * slots["average_gradient"] + (1.0 - rho) * g
            new["average_gradient"] = a
            denominator = v - a * a + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * g / xp.sqrt(denominator)
        if self.momentum > 0:
            m = self.momentum * slots["momentum"] + increment
            new["momentum"] = m
            return p - m, new
        return p - increment, new

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, JMLR 2011), Keras' `Adagrad`.

    With learning rate lr and gradient g (the accumulator starts at initial_accumulator_value):

        s <- s + g**2
        w <- w - lr * g / sqrt(s + epsilon)         <- epsilon INSIDE the square root (Keras, Optax)

    PyTorch's Adagrad uses lr * g / (sqrt(s) + eps) and starts s at 0 by default; with its
    `initial_accumulator_value` set to ours and eps = 0 (ours too) the two agree.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = _non_negative("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.epsilon = _non_negative("epsilon", epsilon)

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
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 epsilon_hat=False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = _fraction("beta_1", beta_1)
        self.beta_2 = _fraction("beta_2", beta_2)
        self.epsilon = _non_negative("epsilon", epsilon)
        self.amsgrad = _boolean("amsgrad", amsgrad)
        self.epsilon_hat = _boolean("epsilon_hat", epsilon_hat)

    def _slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def _update_leaf(self, p, g, slots, lr, t):
        xp = _backend().xp
        b1, b2 = self.beta_1, self.beta_2
        correction_1 = _one_minus_power(b1, t)
        correction_2 = _one_minus_power(b2, t)
        fused = ops.fast_path("adam")  # CuPy: this whole method as one kernel
        if fused is not None and not self.amsgrad:
            p, m, v = fused(p, g, slots["momentum"], slots["velocity"], lr, correction_1, correction_2,
                            b1, b2, self.epsilon, self.epsilon_hat)
            return p, {"momentum": m, "velocity": v}
        m = b1 * slots["momentum"] + (1.0 - b1) * g
        v = b2 * slots["velocity"] + (1.0 - b2) * (g * g)
        new = {"momentum": m, "velocity": v}
        if self.amsgrad:
            v = xp.maximum(slots["velocity_hat"], v)
            new["velocity_hat"] = v
        if self.epsilon_hat:
            alpha = lr * xp.sqrt(correction_2) / correction_1
            return p - alpha * m / (xp.sqrt(v) + self.epsilon), new
        m_hat = m / correction_1
        v_hat = v / correction_2
        return p - lr * m_hat / (xp.sqrt(v_hat) + self.epsilon), new

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad, "epsilon_hat": self.epsilon_hat}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, ICLR 2019), Keras' `AdamW`:

        w <- w - lr * weight_decay * w,   then the Adam step above (same epsilon forms).

    This equals PyTorch's `AdamW` (w *= 1 - lr * weight_decay) and Optax's `adamw`. The default
    weight_decay is Keras' 0.004 (PyTorch's is 0.01).
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, epsilon_hat=False):
        if weight_decay is None:
            raise invalid("weight_decay", "a non-negative float", weight_decay, InvalidTypeError)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         epsilon_hat=epsilon_hat)


ALL = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adam": Adam, "adamw": AdamW}


def serialize(optimizer):
    """{"class_name": ..., "config": ...}: JSON-able."""
    if not isinstance(optimizer, Optimizer):
        raise invalid("optimizer", "a portanet.optimizers.Optimizer", optimizer, InvalidTypeError)
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """The optimizer described by `{"class_name": ..., "config": ...}` (class names as in
    `serialize`, or the lower-case names `get` accepts)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise invalid("optimizer", 'a dict {"class_name": ..., "config": ...}', config, InvalidTypeError)
    name = config["class_name"]
    cls = ALL.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise invalid("class_name", f"one of {[c.__name__ for c in ALL.values()]}", name)
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """An optimizer from a name ("sgd", "rmsprop", "adagrad", "adam", "adamw": Keras defaults),
    a config dict {"class_name": ..., "config": ...}, or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = ALL.get(identifier.lower())
        if cls is None:
            raise invalid("optimizer", f"one of {sorted(ALL)}", identifier)
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise invalid("optimizer", "a name, a config dict or a portanet.optimizers.Optimizer",
                  identifier, InvalidTypeError)
