"""Optimizers: Keras names, arguments and defaults; Optax-style pure functions (docs/architecture.md).

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
                            "velocity_hat" (amsgrad); Nadam "momentum", "velocity"; Adamax
                            "momentum", "norm"; Adadelta "accumulated_grad",
                            "accumulated_delta_var"; Lion "momentum". Keras' slot names.
    state["u_product"]      Nadam only: 0-d float array (dtype of "learning_rate"), the product
                            of the momentum schedule so far (Keras' `_u_product`; starts at 1)

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
from .. import schedules  # keras.optimizers.schedules: pn.optimizers.schedules is portanet.schedules
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import REGISTRY, Optimizer
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

get, serialize, deserialize = REGISTRY.get, REGISTRY.serialize, REGISTRY.deserialize

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam", "Lion",
           "schedules", "get", "serialize", "deserialize"]
