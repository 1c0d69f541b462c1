"""Optimizers and learning-rate schedules.

Oracles, for a fixed sequence of 50 random gradients (numpy rng) on a nested dict of parameters:
- a float64 reference of each published update rule, written below in plain numpy (Keras' forms:
  see portanet/optimizers.py), tolerance 1e-10 relative in float64 (every setting on NumPy, one
  setting per rule and feature on the other backends);
- torch.optim (float64) and optax (float64, x64 on) for the settings where they compute the same
  thing, to 1e-6 relative: elementwise rtol 1e-6 plus atol 1e-6 * max |parameter| over the
  trajectory (a parameter passing near 0 has no meaningful elementwise relative error), and the
  largest deviation over the trajectory below 1e-6 of the largest |parameter|. Measured: ~1e-16
  everywhere except (a) torch's norm clipping, which divides by norm + 1e-6 (up to 9e-8), and (b)
  optax evaluating a schedule from its int32 count in float32 (2e-9). Where a setting has no
  torch/optax counterpart the table says why (epsilon inside vs outside the square root, optax's
  amsgrad maximum over v_hat, torch's coupled weight decay, lr inside vs outside SGD momentum);
  every setting is still checked against the numpy reference;
- Keras 3 itself (JAX backend, floatx float64, x64 on) for the settings marked keras=True (Nadam,
  Adamax, Adadelta, Lion: Keras' class of the same name and arguments, a schedule as Keras'
  schedule of the same config), same tolerance. Measured: <= 5e-16 except Keras' CosineDecay with
  warmup (6e-9, float32 arithmetic inside Keras' schedule). torch's NAdam with momentum_decay=1 is
  Keras' Nadam (6e-11: torch keeps mu_product in float32); optax's nadam has no momentum schedule;
  torch and optax put Adamax's epsilon inside the maximum (compared with epsilon=0);
- float32 on every backend against the float64 reference (RTOL32/ATOL32 below).
"""
import gc
import json
import math
import os
import weakref

import numpy as np
import pytest

from portanet import backend as B
from portanet import optimizers as O
from portanet import schedules as S
from portanet.errors import InvalidArgumentError, InvalidTypeError
from portanet.tree import tree_leaves, tree_map

STEPS = 50
PATHS = (("dense", "kernel"), ("dense", "bias"), ("scale",))
SHAPES = ((3, 4), (3, 4), (3, 4))  # one shape: eager JAX compiles each op once per shape (slow here)

# float32 trajectories (50 steps) against the float64 reference
RTOL32, ATOL32 = 1e-5, 1e-5  # measured: at most 5.4e-7 of the largest |parameter|
RTOL_REF64 = 1e-10
# torch / optax: |ours - theirs| <= 1e-6 * (|theirs| + max |theirs| over the trajectory)
RTOL_ORACLE = 1e-6


# ---------------------------------------------------------------------------------------------
# problem: flat lists of float64 numpy arrays in PATHS order <-> nested dicts

def nest(flat):
    out = {}
    for path, value in zip(PATHS, flat):
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def flatten(tree):
    out = []
    for path in PATHS:
        node = tree
        for key in path:
            node = node[key]
        out.append(node)
    return out


def problem(seed=0, steps=STEPS):
    """Initial params and `steps` gradients; the gradient scale varies so clipping sometimes bites."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.uniform(0.1, 2.0) * rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return params, grads


# ---------------------------------------------------------------------------------------------
# Keras' schedule formulas, in plain Python

def keras_exponential(step, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    p = step / decay_steps
    return initial_learning_rate * decay_rate ** (math.floor(p) if staircase else p)


def keras_piecewise(step, boundaries, values):
    for boundary, value in zip(boundaries, values):
        if step <= boundary:
            return value
    return values[-1]


def keras_cosine(step, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, start):
        return start * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)
    if warmup_target is None:
        return decay(min(step, decay_steps), initial_learning_rate)
    s = min(step, decay_steps + warmup_steps)
    if s < warmup_steps:
        return initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps
    return decay(s - warmup_steps, warmup_target)


# ---------------------------------------------------------------------------------------------
# the float64 numpy reference of each rule (Keras forms; see the docstrings in optimizers.py)

def ref_clip(cfg, grads):
    if cfg.get("clipnorm"):
        c = cfg["clipnorm"]
        return [g * c / max(np.sqrt(np.sum(g * g)), c) for g in grads]
    if cfg.get("global_clipnorm"):
        c = cfg["global_clipnorm"]
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g * min(1.0, c / norm) for g in grads]
    if cfg.get("clipvalue"):
        return [np.clip(g, -cfg["clipvalue"], cfg["clipvalue"]) for g in grads]
    return grads


def ref_sgd(p, g, s, lr, t, cfg):
    mu = cfg.get("momentum", 0.0)
    if mu == 0:
        return p - lr * g
    s["m"] = mu * s.get("m", 0.0) - lr * g
    return p + mu * s["m"] - lr * g if cfg.get("nesterov") else p + s["m"]


def ref_rmsprop(p, g, s, lr, t, cfg):
    rho, mu, eps = cfg.get("rho", 0.9), cfg.get("momentum", 0.0), cfg.get("epsilon", 1e-7)
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g ** 2
    if cfg.get("centered"):
        s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g
        step = lr * g / np.sqrt(s["v"] - s["a"] ** 2 + eps)
    else:
        step = lr * g / np.sqrt(s["v"] + eps)
    if mu > 0:
        s["m"] = mu * s.get("m", 0.0) + step
        step = s["m"]
    return p - step


def ref_adagrad(p, g, s, lr, t, cfg):
    s["acc"] = s.get("acc", cfg.get("initial_accumulator_value", 0.1)) + g ** 2
    return p - lr * g / np.sqrt(s["acc"] + cfg.get("epsilon", 1e-7))


def ref_adam(p, g, s, lr, t, cfg):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    v = s["v"]
    if cfg.get("amsgrad"):
        s["vmax"] = v = np.maximum(s.get("vmax", 0.0), v)
    if cfg.get("epsilon_hat"):
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return p - alpha * s["m"] / (np.sqrt(v) + eps)
    m_hat, v_hat = s["m"] / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_adamax(p, g, s, lr, t, cfg):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
    return p - lr * s["m"] / ((1 - b1 ** t) * (s["u"] + eps))


def ref_nadam(p, g, s, lr, t, cfg):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    mu, mu_next = b1 * (1 - 0.5 * 0.96 ** t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
    s["product"] = s.get("product", 1.0) * mu  # mu_1 * ... * mu_t (the same for every parameter)
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    m_hat = mu_next * s["m"] / (1 - s["product"] * mu_next) + (1 - mu) * g / (1 - s["product"])
    return p - lr * m_hat / (np.sqrt(s["v"] / (1 - b2 ** t)) + eps)


def ref_adadelta(p, g, s, lr, t, cfg):
    rho, eps = cfg.get("rho", 0.95), cfg.get("epsilon", 1e-7)
    s["eg"] = rho * s.get("eg", 0.0) + (1 - rho) * g ** 2
    dx = -np.sqrt(s.get("ex", 0.0) + eps) / np.sqrt(s["eg"] + eps) * g
    s["ex"] = rho * s.get("ex", 0.0) + (1 - rho) * dx ** 2
    return p + lr * dx


def ref_lion(p, g, s, lr, t, cfg):
    b1, b2 = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.99)
    m = s.get("m", 0.0)
    s["m"] = b2 * m + (1 - b2) * g
    return p - lr * np.sign(b1 * m + (1 - b1) * g)


RULES = {"SGD": ref_sgd, "RMSprop": ref_rmsprop, "Adagrad": ref_adagrad, "Adam": ref_adam, "AdamW": ref_adam,
         "Adamax": ref_adamax, "Nadam": ref_nadam, "Adadelta": ref_adadelta, "Lion": ref_lion}
DEFAULT_LR = {"SGD": 0.01, "RMSprop": 0.001, "Adagrad": 0.001, "Adam": 0.001, "AdamW": 0.001,
              "Adamax": 0.001, "Nadam": 0.001, "Adadelta": 0.001, "Lion": 0.001}


def reference_trajectory(cls_name, cfg, params, grads_seq, lrs):
    """Parameters after each step (list of lists of arrays); lrs[t] is the rate of update t."""
    params = [p.copy() for p in params]
    slots = [{} for _ in params]
    weight_decay = cfg.get("weight_decay", 0.004 if cls_name == "AdamW" else None)
    out = []
    for t, grads in enumerate(grads_seq, start=1):
        lr = lrs[t - 1]
        grads = ref_clip(cfg, grads)
        if weight_decay:
            params = [p - lr * weight_decay * p for p in params]
        params = [RULES[cls_name](p, g, s, lr, t, cfg) for p, g, s in zip(params, grads, slots)]
        out.append([p.copy() for p in params])
    return out


# ---------------------------------------------------------------------------------------------
# settings: our optimizer, the reference's learning rates, and the torch / optax counterparts

def setting(id, cls, kwargs, torch=None, optax=None, lr_fn=None, why="", keras=False):
    """keras=True: also checked against Keras 3's optimizer of the same name and arguments."""
    return pytest.param(dict(id=id, cls=cls, kwargs=kwargs, torch=torch, optax=optax, lr_fn=lr_fn, why=why,
                             keras=keras), id=id)


def _sgd_decoupled(optax, lr, momentum, wd):
    return optax.chain(optax.trace(decay=momentum), optax.add_decayed_weights(wd), optax.scale(-lr))


EXP = dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)
COS = dict(initial_learning_rate=0.01, decay_steps=30, alpha=0.1, warmup_target=0.02, warmup_steps=10)

SETTINGS = [
    setting("sgd", "SGD", dict(learning_rate=0.05),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05)),
            optax=lambda o: o.sgd(0.05)),
    setting("sgd-momentum", "SGD", dict(learning_rate=0.05, momentum=0.9),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05, momentum=0.9)),
            optax=lambda o: o.sgd(0.05, momentum=0.9)),
    setting("sgd-nesterov", "SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05, momentum=0.9, nesterov=True)),
            optax=lambda o: o.sgd(0.05, momentum=0.9, nesterov=True)),
    # decoupled weight decay: without momentum the same as torch's coupled weight_decay
    setting("sgd-weight-decay", "SGD", dict(learning_rate=0.05, weight_decay=0.1),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05, weight_decay=0.1)),
            optax=lambda o: o.chain(o.add_decayed_weights(0.1), o.sgd(0.05))),
    # with momentum torch has no decoupled SGD: its SGD plus p *= 1 - lr*wd before each step
    setting("sgd-momentum-weight-decay", "SGD", dict(learning_rate=0.05, momentum=0.8, weight_decay=0.05),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05, momentum=0.8), decoupled_weight_decay=0.05),
            optax=lambda o: _sgd_decoupled(o, 0.05, 0.8, 0.05)),
    setting("sgd-clipnorm", "SGD", dict(learning_rate=0.05, clipnorm=1.0),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05), clipnorm=1.0),
            why="optax has no per-tensor norm clipping"),
    setting("sgd-momentum-global-clipnorm", "SGD", dict(learning_rate=0.05, momentum=0.9, global_clipnorm=2.0),
            torch=dict(cls="SGD", kwargs=dict(lr=0.05, momentum=0.9), global_clipnorm=2.0),
            optax=lambda o: o.chain(o.clip_by_global_norm(2.0), o.sgd(0.05, momentum=0.9))),
    setting("sgd-momentum-exponential-decay", "SGD",
            dict(learning_rate=S.ExponentialDecay(**EXP), momentum=0.9),
            lr_fn=lambda t: keras_exponential(t, **EXP),
            why="Keras keeps lr inside the momentum; torch and optax outside: equal only for a constant lr"),
    setting("sgd-piecewise", "SGD",
            dict(learning_rate=S.PiecewiseConstantDecay([10, 30], [0.1, 0.05, 0.01])),
            torch=dict(cls="SGD", kwargs=dict(lr=0.1)),
            lr_fn=lambda t: keras_piecewise(t, [10, 30], [0.1, 0.05, 0.01])),
    setting("rmsprop", "RMSprop", dict(learning_rate=0.01),
            optax=lambda o: o.rmsprop(0.01, decay=0.9, eps=1e-7),
            why="torch puts epsilon outside the square root (compared with epsilon=0 below)"),
    setting("rmsprop-epsilon0", "RMSprop", dict(learning_rate=0.01, rho=0.8, epsilon=0.0),
            torch=dict(cls="RMSprop", kwargs=dict(lr=0.01, alpha=0.8, eps=0.0)),
            optax=lambda o: o.rmsprop(0.01, decay=0.8, eps=0.0)),
    setting("rmsprop-centered-momentum", "RMSprop",
            dict(learning_rate=0.01, momentum=0.9, centered=True, epsilon=1e-4),
            optax=lambda o: o.rmsprop(0.01, decay=0.9, eps=1e-4, centered=True, momentum=0.9),
            why="torch puts epsilon outside the square root (compared with epsilon=0 below)"),
    setting("rmsprop-centered-momentum-epsilon0", "RMSprop",
            dict(learning_rate=0.01, momentum=0.9, centered=True, epsilon=0.0),
            torch=dict(cls="RMSprop", kwargs=dict(lr=0.01, alpha=0.9, eps=0.0, momentum=0.9, centered=True)),
            optax=lambda o: o.rmsprop(0.01, decay=0.9, eps=0.0, centered=True, momentum=0.9)),
    setting("rmsprop-clipvalue-weight-decay", "RMSprop",
            dict(learning_rate=0.01, clipvalue=0.5, weight_decay=0.1),
            optax=lambda o: o.chain(o.clip(0.5), o.scale_by_rms(decay=0.9, eps=1e-7),
                                    o.add_decayed_weights(0.1), o.scale(-0.01)),
            why="torch's RMSprop weight decay is coupled and its epsilon outside the square root"),
    setting("adagrad", "Adagrad", dict(learning_rate=0.1),
            optax=lambda o: o.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7),
            why="torch puts epsilon outside the square root (compared with epsilon=0 below)"),
    setting("adagrad-epsilon0", "Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=0.0),
            torch=dict(cls="Adagrad", kwargs=dict(lr=0.1, initial_accumulator_value=0.5, eps=0.0)),
            optax=lambda o: o.adagrad(0.1, initial_accumulator_value=0.5, eps=0.0)),
    setting("adagrad-global-clipnorm", "Adagrad", dict(learning_rate=0.1, epsilon=0.0, global_clipnorm=2.0),
            torch=dict(cls="Adagrad", kwargs=dict(lr=0.1, initial_accumulator_value=0.1, eps=0.0),
                       global_clipnorm=2.0),
            optax=lambda o: o.chain(o.clip_by_global_norm(2.0), o.adagrad(0.1, eps=0.0))),
    setting("adam", "Adam", dict(learning_rate=0.01),
            torch=dict(cls="Adam", kwargs=dict(lr=0.01, eps=1e-7)),
            optax=lambda o: o.adam(0.01, eps=1e-7)),
    setting("adam-betas-epsilon", "Adam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
            torch=dict(cls="Adam", kwargs=dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
            optax=lambda o: o.adam(0.01, b1=0.5, b2=0.9, eps=1e-3)),
    setting("adam-amsgrad", "Adam", dict(learning_rate=0.01, beta_2=0.9, amsgrad=True),
            torch=dict(cls="Adam", kwargs=dict(lr=0.01, betas=(0.9, 0.9), eps=1e-7, amsgrad=True)),
            why="optax's amsgrad takes the maximum of the bias-corrected v_hat, torch and Keras of v"),
    setting("adam-epsilon-hat", "Adam", dict(learning_rate=0.01, epsilon=1e-3, epsilon_hat=True),
            why="Keras' epsilon-hat form: no torch or optax counterpart"),
    setting("adam-weight-decay-clipnorm", "Adam", dict(learning_rate=0.01, weight_decay=0.1, clipnorm=1.0),
            torch=dict(cls="AdamW", kwargs=dict(lr=0.01, eps=1e-7, weight_decay=0.1), clipnorm=1.0),
            why="optax has no per-tensor norm clipping"),
    setting("adam-clipvalue", "Adam", dict(learning_rate=0.01, clipvalue=0.5),
            torch=dict(cls="Adam", kwargs=dict(lr=0.01, eps=1e-7), clipvalue=0.5),
            optax=lambda o: o.chain(o.clip(0.5), o.adam(0.01, eps=1e-7))),
    setting("adam-cosine-warmup", "Adam", dict(learning_rate=S.CosineDecay(**COS)),
            torch=dict(cls="Adam", kwargs=dict(lr=0.01, eps=1e-7)),
            optax=lambda o: o.adam(o.warmup_cosine_decay_schedule(0.01, 0.02, 10, 40, 0.002), eps=1e-7),
            lr_fn=lambda t: keras_cosine(t, **COS)),
    setting("adamw", "AdamW", dict(learning_rate=0.01),
            torch=dict(cls="AdamW", kwargs=dict(lr=0.01, eps=1e-7, weight_decay=0.004)),
            optax=lambda o: o.adamw(0.01, eps=1e-7, weight_decay=0.004)),
    setting("adamw-amsgrad-global-clipnorm", "AdamW",
            dict(learning_rate=0.01, weight_decay=0.1, amsgrad=True, global_clipnorm=2.0),
            torch=dict(cls="AdamW", kwargs=dict(lr=0.01, eps=1e-7, weight_decay=0.1, amsgrad=True),
                       global_clipnorm=2.0),
            why="optax's amsgrad takes the maximum of the bias-corrected v_hat"),
    # torch's NAdam with momentum_decay=1 has Keras' momentum schedule mu_t = b1 (1 - 0.96**t / 2);
    # optax's nadam has none (mu_t = b1)
    setting("nadam", "Nadam", dict(learning_rate=0.01),
            torch=dict(cls="NAdam", kwargs=dict(lr=0.01, eps=1e-7, momentum_decay=1.0)), keras=True,
            why="optax's nadam has no momentum schedule"),
    setting("nadam-betas-epsilon", "Nadam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
            torch=dict(cls="NAdam", kwargs=dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, momentum_decay=1.0)),
            keras=True, why="optax's nadam has no momentum schedule"),
    setting("nadam-weight-decay-clipnorm", "Nadam", dict(learning_rate=0.01, weight_decay=0.1, clipnorm=1.0),
            torch=dict(cls="NAdam", kwargs=dict(lr=0.01, eps=1e-7, momentum_decay=1.0, weight_decay=0.1,
                                                decoupled_weight_decay=True), clipnorm=1.0),
            keras=True, why="optax's nadam has no momentum schedule"),
    setting("nadam-exponential-decay", "Nadam", dict(learning_rate=S.ExponentialDecay(**EXP)),
            torch=dict(cls="NAdam", kwargs=dict(lr=0.1, eps=1e-7, momentum_decay=1.0)), keras=True,
            lr_fn=lambda t: keras_exponential(t, **EXP), why="optax's nadam has no momentum schedule"),
    setting("nadam-defaults", "Nadam", {}, keras=True, why="Keras' defaults; torch: see the settings above"),
    setting("adamax", "Adamax", dict(learning_rate=0.01), keras=True,
            why="torch and optax put epsilon inside the maximum (compared with epsilon=0 below)"),
    setting("adamax-betas-epsilon", "Adamax", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=0.1),
            keras=True, why="torch and optax put epsilon inside the maximum: here it matters"),
    setting("adamax-epsilon0", "Adamax", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=0.0),
            torch=dict(cls="Adamax", kwargs=dict(lr=0.01, betas=(0.8, 0.99), eps=0.0)),
            optax=lambda o: o.adamax(0.01, b1=0.8, b2=0.99, eps=0.0), keras=True),
    setting("adamax-global-clipnorm-weight-decay", "Adamax",
            dict(learning_rate=0.01, epsilon=0.0, global_clipnorm=2.0, weight_decay=0.1),
            torch=dict(cls="Adamax", kwargs=dict(lr=0.01, eps=0.0), global_clipnorm=2.0,
                       decoupled_weight_decay=0.1),
            optax=lambda o: o.chain(o.clip_by_global_norm(2.0), o.scale_by_adamax(eps=0.0),
                                    o.add_decayed_weights(0.1), o.scale(-0.01)), keras=True),
    setting("adamax-defaults", "Adamax", {}, keras=True, why="Keras' defaults: epsilon outside the maximum"),
    # Adadelta at Zeiler's lr = 1 (Keras' default 0.001 moves the parameters by ~1e-6 per step)
    setting("adadelta", "Adadelta", dict(learning_rate=1.0),
            torch=dict(cls="Adadelta", kwargs=dict(lr=1.0, rho=0.95, eps=1e-7)),
            optax=lambda o: o.adadelta(1.0, rho=0.95, eps=1e-7), keras=True),
    setting("adadelta-rho-epsilon-clipvalue", "Adadelta", dict(learning_rate=0.5, rho=0.8, epsilon=1e-5, clipvalue=0.5),
            torch=dict(cls="Adadelta", kwargs=dict(lr=0.5, rho=0.8, eps=1e-5), clipvalue=0.5),
            optax=lambda o: o.chain(o.clip(0.5), o.adadelta(0.5, rho=0.8, eps=1e-5)), keras=True),
    setting("adadelta-weight-decay", "Adadelta", dict(learning_rate=1.0, weight_decay=0.01),
            torch=dict(cls="Adadelta", kwargs=dict(lr=1.0, rho=0.95, eps=1e-7), decoupled_weight_decay=0.01),
            keras=True, why="optax's adadelta weight decay is coupled (added to the gradient)"),
    setting("adadelta-defaults", "Adadelta", {},
            torch=dict(cls="Adadelta", kwargs=dict(lr=0.001, rho=0.95, eps=1e-7)),
            optax=lambda o: o.adadelta(0.001, rho=0.95, eps=1e-7), keras=True),
    # Lion: optax's lion is the same rule (its weight decay defaults to 1e-3; Keras' to None)
    setting("lion", "Lion", dict(learning_rate=0.01),
            optax=lambda o: o.lion(0.01, weight_decay=0.0), keras=True, why="torch has no Lion"),
    setting("lion-betas-weight-decay", "Lion", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, weight_decay=0.1),
            optax=lambda o: o.lion(0.01, b1=0.5, b2=0.9, weight_decay=0.1), keras=True, why="torch has no Lion"),
    setting("lion-beta1-one-clipvalue", "Lion", dict(learning_rate=0.01, beta_1=1.0, clipvalue=0.5),
            optax=lambda o: o.chain(o.clip(0.5), o.lion(0.01, b1=1.0, weight_decay=0.0)), keras=True,
            why="torch has no Lion"),
    setting("lion-cosine-warmup", "Lion", dict(learning_rate=S.CosineDecay(**COS)),
            optax=lambda o: o.lion(o.warmup_cosine_decay_schedule(0.01, 0.02, 10, 40, 0.002), weight_decay=0.0),
            lr_fn=lambda t: keras_cosine(t, **COS), keras=True, why="torch has no Lion"),
    setting("lion-defaults", "Lion", {}, keras=True, why="torch has no Lion"),
]


def learning_rates(s, steps=STEPS):
    if s["lr_fn"] is not None:
        return [s["lr_fn"](t) for t in range(steps)]
    return [s["kwargs"].get("learning_rate", DEFAULT_LR[s["cls"]])] * steps


def make(s):
    return getattr(O, s["cls"])(**s["kwargs"])


def reference(s, params, grads):
    return reference_trajectory(s["cls"], s["kwargs"], params, grads, learning_rates(s, len(grads)))


# ---------------------------------------------------------------------------------------------
# runners

def run_ours(opt, params, grads_seq, update=None):
    """Trajectory of `opt` on the current backend at its floatx, as host float64 arrays."""
    b = B.get()
    dtype = b.float_dtype()
    device = lambda flat: nest([b.asarray(a, dtype=dtype) for a in flat])  # noqa: E731
    update = update or opt.update
    p = device(params)
    state = opt.init(p)
    out = []
    for grads in grads_seq:
        p, state = update(p, device(grads), state)
        out.append([np.asarray(b.to_numpy(a), dtype=np.float64) for a in flatten(p)])
    return out


def run_torch(s, params, grads_seq):
    torch = pytest.importorskip("torch")
    spec = s["torch"]
    ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    opt = getattr(torch.optim, spec["cls"])(ps, **spec["kwargs"])
    lrs = learning_rates(s, len(grads_seq))
    out = []
    for t, grads in enumerate(grads_seq):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for p, g in zip(ps, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        if "clipnorm" in spec:  # torch clips with c / (norm + 1e-6)
            for p in ps:
                torch.nn.utils.clip_grad_norm_([p], spec["clipnorm"])
        if "global_clipnorm" in spec:
            torch.nn.utils.clip_grad_norm_(ps, spec["global_clipnorm"])
        if "clipvalue" in spec:
            torch.nn.utils.clip_grad_value_(ps, spec["clipvalue"])
        if "decoupled_weight_decay" in spec:
            with torch.no_grad():
                for p in ps:
                    p.mul_(1 - lrs[t] * spec["decoupled_weight_decay"])
        opt.step()
        out.append([p.detach().numpy().copy() for p in ps])
    return out


def run_optax(s, params, grads_seq):
    optax = pytest.importorskip("optax")
    if not B.installed("jax"):
        pytest.skip("jax backend not installed")
    with B.use("jax", floatx="float64") as b:  # turns on jax_enable_x64
        xp = b.xp
        tx = s["optax"](optax)
        ps = [b.asarray(p, dtype=xp.float64) for p in params]
        state = tx.init(ps)
        out = []
        for grads in grads_seq:
            updates, state = tx.update([b.asarray(g, dtype=xp.float64) for g in grads], state, ps)
            ps = [p + u for p, u in zip(ps, updates)]  # optax.apply_updates
            out.append([np.asarray(p, dtype=np.float64) for p in ps])
    return out


def keras_module():
    """Keras 3 on JAX (skips without it); imported here, so that the test suite runs without it."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"Keras runs on {keras.backend.backend()}, not JAX")
    if not B.installed("jax"):
        pytest.skip("jax backend not installed")
    return keras


def run_keras(s, params, grads_seq):
    """Keras' optimizer of the same class name and arguments (a schedule as Keras' schedule of the
    same config), applied to float64 `keras.Variable`s (floatx float64, x64 on)."""
    keras = keras_module()
    kwargs = dict(s["kwargs"])
    lr = kwargs.get("learning_rate")
    if isinstance(lr, S.LearningRateSchedule):
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, type(lr).__name__).from_config(lr.get_config())
    floatx = keras.config.floatx()
    with B.use("jax", floatx="float64"):  # turns on jax_enable_x64
        keras.config.set_floatx("float64")
        try:
            opt = getattr(keras.optimizers, s["cls"])(**kwargs)
            variables = [keras.Variable(p, dtype="float64") for p in params]
            out = []
            for grads in grads_seq:
                opt.apply_gradients(zip([keras.ops.convert_to_tensor(g, dtype="float64") for g in grads], variables))
                out.append([np.asarray(keras.ops.convert_to_numpy(v.value), dtype=np.float64) for v in variables])
        finally:
            keras.config.set_floatx(floatx)
    assert all(v.dtype == "float64" for v in variables)
    return out


def assert_trajectories(result, expected, rtol, atol, what):
    assert len(result) == len(expected)
    for i, path in enumerate(PATHS):
        r = np.stack([step[i] for step in result])
        e = np.stack([step[i] for step in expected])
        bad = ~np.isclose(r, e, rtol=rtol, atol=atol)
        first = int(np.argmax(bad.reshape(len(r), -1).any(axis=1))) if bad.any() else 0
        np.testing.assert_allclose(r[first], e[first], rtol=rtol, atol=atol,
                                   err_msg=f"{what}: step {first + 1}, parameter {'/'.join(path)}")
        np.testing.assert_allclose(r, e, rtol=rtol, atol=atol, err_msg=f"{what}: {'/'.join(path)}")


def scale(trajectory):
    return max(np.max(np.abs(a)) for step in trajectory for a in step)


def max_relative_deviation(result, expected):
    """max |result - expected| / max |expected|, over every step and parameter."""
    return max(np.max(np.abs(r - e)) for rs, es in zip(result, expected) for r, e in zip(rs, es)) / scale(expected)


# ---------------------------------------------------------------------------------------------
# trajectories

# float64 on NumPy for every setting; on the other backends (slower per step) one setting per rule
# and feature, since float32 below runs every setting everywhere
FLOAT64_EVERYWHERE = {"sgd-momentum-weight-decay", "rmsprop-centered-momentum", "adagrad-global-clipnorm",
                      "adam-epsilon-hat", "adam-cosine-warmup", "adamw-amsgrad-global-clipnorm",
                      "nadam-weight-decay-clipnorm", "nadam-exponential-decay", "adamax-betas-epsilon",
                      "adamax-global-clipnorm-weight-decay", "adadelta-rho-epsilon-clipvalue",
                      "lion-betas-weight-decay", "lion-cosine-warmup"}


@pytest.mark.parametrize("s", SETTINGS)
def test_float64_matches_reference_on_every_backend(float64, s):
    if float64.name != "numpy" and s["id"] not in FLOAT64_EVERYWHERE:
        pytest.skip("float64 on this backend: covered by the FLOAT64_EVERYWHERE settings")
    params, grads = problem()
    result = run_ours(make(s), params, grads)
    assert_trajectories(result, reference(s, params, grads), RTOL_REF64, 1e-12, f"{float64.name} float64")


@pytest.mark.parametrize("s", SETTINGS)
def test_float32_matches_reference_on_every_backend(backend, s):
    params, grads = problem()
    result = run_ours(make(s), params, grads)
    assert_trajectories(result, reference(s, params, grads), RTOL32, ATOL32, f"{backend.name} float32")


def _ours_float64(s, params, grads):
    with B.use("numpy", floatx="float64"):
        return run_ours(make(s), params, grads)


@pytest.mark.parametrize("s", [p for p in SETTINGS if p.values[0]["torch"] is not None])
def test_matches_torch(s):
    params, grads = problem()
    expected = run_torch(s, params, grads)
    result = _ours_float64(s, params, grads)
    assert_trajectories(result, expected, RTOL_ORACLE, RTOL_ORACLE * scale(expected), "torch.optim")
    assert max_relative_deviation(result, expected) < RTOL_ORACLE


@pytest.mark.parametrize("s", [p for p in SETTINGS if p.values[0]["optax"] is not None])
def test_matches_optax(s):
    params, grads = problem()
    expected = run_optax(s, params, grads)
    result = _ours_float64(s, params, grads)
    assert_trajectories(result, expected, RTOL_ORACLE, RTOL_ORACLE * scale(expected), "optax")
    assert max_relative_deviation(result, expected) < RTOL_ORACLE


@pytest.mark.parametrize("s", [p for p in SETTINGS if p.values[0]["keras"]])
def test_matches_keras(s):
    """Keras 3 itself (JAX backend, float64), 50 steps: its own clipping, weight decay, schedules
    and update rules."""
    params, grads = problem()
    expected = run_keras(s, params, grads)
    result = _ours_float64(s, params, grads)
    assert_trajectories(result, expected, RTOL_ORACLE, RTOL_ORACLE * scale(expected), "Keras")
    assert max_relative_deviation(result, expected) < RTOL_ORACLE


def test_the_reference_sees_a_wrong_rule():
    """The oracles have teeth: Keras' epsilon-hat Adam differs from the default form, RMSprop's
    epsilon placement matters, and both agree when epsilon is 0."""
    params, grads = problem(steps=10)
    lrs = [0.01] * 10
    default = reference_trajectory("Adam", {"epsilon": 1e-3}, params, grads, lrs)
    hat = reference_trajectory("Adam", {"epsilon": 1e-3, "epsilon_hat": True}, params, grads, lrs)
    assert max_relative_deviation(hat, default) > 1e-4
    with B.use("numpy", floatx="float64"):
        ours = run_ours(O.Adam(0.01, epsilon=1e-3, epsilon_hat=True), params, grads)
        assert max_relative_deviation(ours, default) > 1e-4
        zero = run_ours(O.Adam(0.01, epsilon=0.0, epsilon_hat=True), params, grads)
        zero_default = run_ours(O.Adam(0.01, epsilon=0.0), params, grads)
    assert_trajectories(zero, zero_default, 1e-12, 1e-14, "epsilon_hat with epsilon=0")


def test_the_oracles_see_the_new_rules_differ():
    """Nadam's momentum schedule and Adamax's epsilon placement are visible at the oracles'
    tolerance: Keras' Nadam is neither Optax's nadam (no schedule) nor Adam, and Keras' Adamax with
    a large epsilon is not PyTorch's (epsilon inside the maximum)."""
    params, grads = problem()
    lrs = [0.01] * len(grads)
    nadam = dict(id="nadam", cls="Nadam", kwargs=dict(learning_rate=0.01), lr_fn=None,
                 optax=lambda o: o.nadam(0.01, eps=1e-7))
    ours = _ours_float64(nadam, params, grads)
    assert max_relative_deviation(ours, run_optax(nadam, params, grads)) > 1e-3  # measured 0.02
    assert max_relative_deviation(ours, reference_trajectory("Adam", {}, params, grads, lrs)) > 1e-3
    adamax = dict(id="adamax", cls="Adamax", kwargs=dict(learning_rate=0.01, epsilon=1.0), lr_fn=None,
                  torch=dict(cls="Adamax", kwargs=dict(lr=0.01, eps=1.0)))
    ours = _ours_float64(adamax, params, grads)
    assert max_relative_deviation(ours, run_torch(adamax, params, grads)) > 10 * RTOL_ORACLE  # measured 8e-5


@pytest.mark.parametrize("name", ["nadam", "adamax", "adadelta", "lion"])
def test_training_resumes_exactly_from_a_saved_model(tmp_path, name):
    """2 epochs, save (with the optimizer state: Nadam's u_product too), load, 2 more epochs ==
    4 uninterrupted epochs, bit for bit on NumPy."""
    pn = pytest.importorskip("portanet")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)

    def fresh():
        pn.set_seed(4)
        model = pn.Sequential([pn.Input((5,)), pn.layers.Dense(8, activation="relu"),
                               pn.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=O.get({"class_name": name, "config": {"learning_rate": 0.05}}),
                      loss="sparse_categorical_crossentropy")
        return model

    with B.use("numpy", floatx="float32"):
        straight = fresh()
        straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
        first = fresh()
        first.fit(x, y, epochs=2, batch_size=16, verbose=0)
        first.save(tmp_path / "half.pnet")
        resumed = pn.load_model(tmp_path / "half.pnet")
        assert isinstance(resumed.optimizer, type(first.optimizer))
        for a, b in zip(tree_leaves(resumed.opt_state), tree_leaves(first.opt_state)):
            np.testing.assert_array_equal(a, b)
        if name == "nadam":
            assert 0.0 < float(resumed.opt_state["u_product"]) < 0.9 ** 8
        resumed.fit(x, y, epochs=4, batch_size=16, verbose=0, initial_epoch=2)
        for got, want in zip(resumed.get_weights(), straight.get_weights()):
            np.testing.assert_array_equal(got, want)


def test_gradient_descent_on_x_sin_x_squared(float64):
    """J(x) = x sin(x^2), J'(x) = sin(x^2) + 2 x^2 cos(x^2): 10 SGD steps from 1.5 at lr 0.01."""
    b = float64
    opt = O.SGD(learning_rate=0.01)
    params = {"x": b.asarray(1.5, dtype=b.xp.float64)}
    state = opt.init(params)
    expected, x = [], 1.5
    for _ in range(10):
        x = x - 0.01 * (math.sin(x ** 2) + 2 * x ** 2 * math.cos(x ** 2))
        expected.append(x)
    got = []
    for _ in range(10):
        xv = b.xp.asarray(params["x"])
        grads = {"x": b.xp.sin(xv ** 2) + 2 * xv ** 2 * b.xp.cos(xv ** 2)}
        params, state = opt.update(params, grads, state)
        got.append(float(b.to_numpy(params["x"])))
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert int(b.to_numpy(state["step"])) == 10


# ---------------------------------------------------------------------------------------------
# jit

JIT_SETTINGS = [p for p in SETTINGS if p.id in (  # one per rule (SGD: also the jitted test below)
    "rmsprop-centered-momentum", "adagrad-global-clipnorm", "adam-cosine-warmup",
    "adamw-amsgrad-global-clipnorm", "nadam-exponential-decay", "adamax-global-clipnorm-weight-decay",
    "adadelta-rho-epsilon-clipvalue", "lion-betas-weight-decay")]


@pytest.mark.parametrize("s", JIT_SETTINGS)
def test_jit_matches_eager(s):
    if not B.installed("jax"):
        pytest.skip("jax backend not installed")
    params, grads = problem(steps=20)
    with B.use("jax", floatx="float32") as b:
        opt = make(s)
        eager = run_ours(opt, params, grads)
        traces = []

        def update(p, g, st):
            traces.append(1)
            return opt.update(p, g, st)

        jitted = run_ours(opt, params, grads, update=b.jit(update))
    assert len(traces) == 1
    # the same operations, compiled: equal to float32 rounding (XLA may fuse differently)
    assert_trajectories(jitted, eager, 1e-5, 1e-6, "jit vs eager")


def test_learning_rate_changes_without_recompiling(backend):
    """The learning rate lives in the state: set it between steps (as a callback does), under jit
    on JAX with a single trace; the trajectory equals the reference with that rate sequence."""
    params, grads = problem(steps=30)
    lrs = [0.1] * 10 + [0.05] * 10 + [0.01] * 10
    opt = O.SGD(learning_rate=0.1, momentum=0.9)
    traces = []

    def update(p, g, st):
        traces.append(1)
        return opt.update(p, g, st)

    step = backend.jit(update)
    dtype = backend.float_dtype()
    p = nest([backend.asarray(a, dtype=dtype) for a in params])
    state = opt.init(p)
    out = []
    for t, g in enumerate(grads):
        if t in (10, 20):
            state = opt.with_learning_rate(state, lrs[t])
            assert float(backend.to_numpy(opt.learning_rate_value(state))) == pytest.approx(lrs[t])
        p, state = step(p, nest([backend.asarray(a, dtype=dtype) for a in g]), state)
        out.append([np.asarray(backend.to_numpy(a), dtype=np.float64) for a in flatten(p)])
    assert_trajectories(out, reference_trajectory("SGD", {"momentum": 0.9}, params, grads, lrs),
                        RTOL32, ATOL32, "learning rate changed between steps")
    if backend.name == "jax":
        assert len(traces) == 1


def test_with_learning_rate_is_pure_and_jittable(backend):
    opt = O.Adam(learning_rate=0.01)
    dtype = backend.float_dtype()
    state = opt.init({"w": backend.asarray(np.ones(3), dtype=dtype)})
    halve = backend.jit(lambda st: opt.with_learning_rate(st, 0.5 * opt.learning_rate_value(st)))
    new = halve(state)
    assert float(backend.to_numpy(new["learning_rate"])) == pytest.approx(0.005)
    assert float(backend.to_numpy(state["learning_rate"])) == pytest.approx(0.01)  # untouched
    assert new["learning_rate"].dtype == dtype
    arr = opt.with_learning_rate(state, backend.asarray(np.float64(0.2)))
    assert arr["learning_rate"].dtype == dtype and tuple(arr["learning_rate"].shape) == ()


# ---------------------------------------------------------------------------------------------
# state

@pytest.mark.parametrize("name, slots, scalars", [
    ("sgd", set(), set()), ("rmsprop", {"velocity"}, set()), ("adagrad", {"accumulator"}, set()),
    ("adam", {"momentum", "velocity"}, set()), ("adamw", {"momentum", "velocity"}, set()),
    ("nadam", {"momentum", "velocity"}, {"u_product"}), ("adamax", {"momentum", "norm"}, set()),
    ("adadelta", {"accumulated_grad", "accumulated_delta_var"}, set()), ("lion", {"momentum"}, set())])
def test_state_is_a_plain_dict_of_arrays(backend, name, slots, scalars):
    b = backend
    params = nest([b.asarray(a, dtype=b.float_dtype()) for a in problem()[0]])
    opt = O.get(name)
    state = opt.init(params)
    assert set(state) == {"step", "learning_rate"} | slots | scalars
    assert b.xp.isdtype(state["step"].dtype, "integral") and tuple(state["step"].shape) == ()
    for scalar in {"learning_rate"} | scalars:
        assert state[scalar].dtype == b.float_dtype() and tuple(state[scalar].shape) == ()
    for slot in slots:
        assert isinstance(state[slot], dict) and set(state[slot]) == {"dense", "scale"}
        for leaf, p in zip(flatten(state[slot]), flatten(params)):
            assert leaf.dtype == p.dtype and tuple(leaf.shape) == tuple(p.shape)
    new_params, new_state = opt.update(params, params, state)
    assert set(new_state) == set(state)
    for leaf, p in zip(tree_leaves(new_params), flatten(params)):
        assert leaf.dtype == p.dtype
    assert int(b.to_numpy(new_state["step"])) == 1


@pytest.mark.parametrize("opt", [O.RMSprop(centered=True, momentum=0.5), O.Nadam()], ids=lambda o: o.name)
def test_state_dtype_follows_float64(float64, opt):
    b = float64
    params = {"w": b.asarray(np.ones((2, 2)), dtype=b.xp.float64)}
    state = opt.init(params)
    for leaf in tree_leaves({k: v for k, v in state.items() if k != "step"}):
        assert leaf.dtype == b.xp.float64
    _, state = opt.update(params, params, state)
    for leaf in tree_leaves({k: v for k, v in state.items() if k != "step"}):
        assert leaf.dtype == b.xp.float64


def test_update_does_not_modify_its_inputs():
    with B.use("numpy", floatx="float64"):
        params, grads = problem(steps=1)
        p, g = nest([a.copy() for a in params]), nest([a.copy() for a in grads[0]])
        for opt in (O.SGD(0.1, momentum=0.9), O.RMSprop(momentum=0.9, centered=True), O.Adagrad(),
                    O.Adam(amsgrad=True), O.AdamW(global_clipnorm=1.0), O.Nadam(weight_decay=0.1), O.Adamax(),
                    O.Adadelta(clipnorm=1.0), O.Lion(weight_decay=0.1)):
            state = opt.init(p)
            state_copy = tree_map(lambda a: np.array(a, copy=True), state)
            for _ in range(2):
                opt.update(p, g, state)
            assert all(np.array_equal(a, b) for a, b in zip(flatten(p), params))
            assert all(np.array_equal(a, b) for a, b in zip(flatten(g), grads[0]))
            assert all(np.array_equal(a, b) for a, b in zip(tree_leaves(state), tree_leaves(state_copy)))


@pytest.mark.parametrize("opt", [O.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                                 O.RMSprop(momentum=0.9, centered=True), O.Adagrad(),
                                 O.Adam(amsgrad=True), O.AdamW(clipvalue=0.5), O.Nadam(weight_decay=0.01),
                                 O.Adamax(global_clipnorm=1.0), O.Adadelta(1.0), O.Lion(0.01)], ids=lambda o: o.name)
def test_foreach_fast_path_gives_identical_updates(backend, opt):
    """The backend's fast path (NumPy: small parameters concatenated, large ones blockwise; a
    non-contiguous gradient among them) equals the update of each parameter alone, bit for bit."""
    if "foreach" not in backend.fast:
        pytest.skip(f"the {backend.name} backend has no foreach fast path")
    rng = np.random.default_rng(5)

    def arrays(*shapes):
        return [backend.asarray(rng.standard_normal(s).astype(np.float32)) for s in shapes]

    w, b, k = arrays((300, 700), (7,), (3, 2, 5))
    gw, gb, gk = arrays((700, 300), (7,), (3, 2, 5))
    params = {"w": w, "layer": {"b": b, "k": k}}
    grads = {"layer": {"k": gk, "b": gb}, "w": gw.T}

    def three_steps():
        p, state = params, opt.init(params)
        for _ in range(3):
            p, state = opt.update(p, grads, state)
        return [backend.to_numpy(a) for a in tree_leaves((p, state))]

    fast = three_steps()
    with B.portable():
        portable = three_steps()
    for f, q in zip(fast, portable):
        np.testing.assert_array_equal(f, q)


def test_grads_are_matched_by_key_not_order():
    with B.use("numpy", floatx="float64"):
        opt = O.SGD(0.1)
        params = {"a": np.ones(2), "b": np.zeros(3)}
        grads = {"b": np.ones(3), "a": np.full(2, 2.0)}
        new, _ = opt.update(params, grads, opt.init(params))
        np.testing.assert_allclose(new["a"], 0.8)
        np.testing.assert_allclose(new["b"], -0.1)


def test_global_clipnorm_of_zero_gradients_is_finite():
    with B.use("numpy", floatx="float32"):
        opt = O.Adam(global_clipnorm=1.0)
        params = {"w": np.ones(3, dtype=np.float32)}
        new, _ = opt.update(params, {"w": np.zeros(3, dtype=np.float32)}, opt.init(params))
        np.testing.assert_array_equal(new["w"], params["w"])


# ---------------------------------------------------------------------------------------------
# schedules

SCHEDULES = [
    (S.ExponentialDecay(0.1, 10, 0.5), lambda t: keras_exponential(t, 0.1, 10, 0.5)),
    (S.ExponentialDecay(0.1, 10, 0.5, staircase=True), lambda t: keras_exponential(t, 0.1, 10, 0.5, True)),
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), lambda t: keras_piecewise(t, [10, 20], [1.0, 0.5, 0.1])),
    (S.PiecewiseConstantDecay([10.5, 20.0], [1.0, 0.5, 0.1]),
     lambda t: keras_piecewise(t, [10.5, 20.0], [1.0, 0.5, 0.1])),
    (S.CosineDecay(0.1, 20), lambda t: keras_cosine(t, 0.1, 20)),
    (S.CosineDecay(0.1, 20, alpha=0.2), lambda t: keras_cosine(t, 0.1, 20, 0.2)),
    (S.CosineDecay(0.0, 20, alpha=0.1, warmup_target=0.1, warmup_steps=5),
     lambda t: keras_cosine(t, 0.0, 20, 0.1, 0.1, 5)),
    (S.CosineDecay(0.05, 20, warmup_target=0.1, warmup_steps=0), lambda t: keras_cosine(t, 0.05, 20, 0.0, 0.1, 0)),
]
SCHEDULE_STEPS = [0, 1, 4, 5, 6, 9, 10, 11, 15, 19, 20, 21, 24, 25, 26, 100]


@pytest.mark.parametrize("schedule, formula", SCHEDULES, ids=[f"{type(s).__name__}-{i}" for i, (s, _) in
                                                             enumerate(SCHEDULES)])
def test_schedule_values_equal_keras_formula(float64, schedule, formula):
    b = float64
    expected = [formula(t) for t in SCHEDULE_STEPS]
    steps = b.asarray(np.asarray(SCHEDULE_STEPS, dtype=np.int32))
    got = b.to_numpy(schedule(steps, dtype=b.xp.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    for t in (0, 10, 26):  # a Python int or a 0-d int32 array
        np.testing.assert_allclose(float(b.to_numpy(schedule(t, dtype=b.xp.float64))), formula(t), rtol=1e-12)
        step = b.asarray(np.int32(t))
        assert float(b.to_numpy(schedule(step))) == pytest.approx(formula(t), rel=1e-6)


def test_schedules_under_jit(float64):
    """All schedules compiled in one function (one compile on JAX) give the same values."""
    b = float64
    steps = b.asarray(np.asarray(SCHEDULE_STEPS, dtype=np.int32))
    jitted = b.jit(lambda s: [schedule(s, dtype=b.xp.float64) for schedule, _ in SCHEDULES])
    for (schedule, formula), got in zip(SCHEDULES, jitted(steps)):
        np.testing.assert_allclose(b.to_numpy(got), [formula(t) for t in SCHEDULE_STEPS], rtol=1e-12,
                                   atol=1e-15, err_msg=repr(schedule))


def test_schedules_match_optax():
    optax = pytest.importorskip("optax")
    if not B.installed("jax"):
        pytest.skip("jax backend not installed")
    with B.use("jax", floatx="float64") as b:
        steps = np.arange(0, 60)
        pairs = [
            (S.ExponentialDecay(0.1, 7, 0.3), optax.exponential_decay(0.1, 7, 0.3)),
            (S.ExponentialDecay(0.1, 7, 0.3, staircase=True), optax.exponential_decay(0.1, 7, 0.3, staircase=True)),
            (S.CosineDecay(0.1, 40, alpha=0.25), optax.cosine_decay_schedule(0.1, 40, alpha=0.25)),
            (S.CosineDecay(0.01, 30, alpha=0.1, warmup_target=0.02, warmup_steps=10),
             optax.warmup_cosine_decay_schedule(0.01, 0.02, 10, 40, 0.002)),
        ]
        for ours, theirs in pairs:
            got = b.to_numpy(ours(b.asarray(steps.astype(np.int32)), dtype=b.xp.float64))
            expected = np.array([float(theirs(int(t))) for t in steps])
            np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=repr(ours))


def test_schedule_learning_rate_is_not_settable():
    opt = O.Adam(learning_rate=S.ExponentialDecay(0.1, 10, 0.5))
    assert opt.uses_schedule and not O.Adam().uses_schedule
    with B.use("numpy", floatx="float32"):
        state = opt.init({"w": np.ones(2, dtype=np.float32)})
        assert float(opt.learning_rate_value(state)) == pytest.approx(0.1)
        with pytest.raises(InvalidTypeError, match="not settable"):
            opt.with_learning_rate(state, 0.01)
        _, state = opt.update({"w": np.ones(2, dtype=np.float32)}, {"w": np.ones(2, dtype=np.float32)}, state)
        # the rate the next update uses: schedule(step=1)
        assert float(opt.learning_rate_value(state)) == pytest.approx(keras_exponential(1, 0.1, 10, 0.5))


# ---------------------------------------------------------------------------------------------
# get / config

@pytest.mark.parametrize("name, cls", [("sgd", O.SGD), ("rmsprop", O.RMSprop), ("adagrad", O.Adagrad),
                                       ("adam", O.Adam), ("adamw", O.AdamW), ("Adam", O.Adam),
                                       ("RMSprop", O.RMSprop), ("nadam", O.Nadam), ("adamax", O.Adamax),
                                       ("adadelta", O.Adadelta), ("lion", O.Lion), ("Nadam", O.Nadam),
                                       ("Adamax", O.Adamax), ("Adadelta", O.Adadelta), ("Lion", O.Lion)])
def test_get_by_name_gives_keras_defaults(name, cls):
    opt = O.get(name)
    assert type(opt) is cls
    assert opt.get_config() == cls().get_config()


def test_keras_defaults():
    assert O.SGD().get_config() == {
        "name": "sgd", "learning_rate": 0.01, "weight_decay": None, "clipnorm": None,
        "global_clipnorm": None, "clipvalue": None, "momentum": 0.0, "nesterov": False}
    r = O.RMSprop()
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon, r.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    a = O.Adagrad()
    assert (a.learning_rate, a.initial_accumulator_value, a.epsilon) == (0.001, 0.1, 1e-7)
    a = O.Adam()
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon, a.amsgrad, a.weight_decay, a.epsilon_hat) == (
        0.001, 0.9, 0.999, 1e-7, False, None, False)
    assert O.AdamW().weight_decay == 0.004
    for cls in (O.Nadam, O.Adamax):
        a = cls()
        assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon, a.weight_decay) == (0.001, 0.9, 0.999, 1e-7, None)
    a = O.Adadelta()
    assert (a.learning_rate, a.rho, a.epsilon, a.weight_decay) == (0.001, 0.95, 1e-7, None)
    assert O.Lion().get_config() == {
        "name": "lion", "learning_rate": 0.001, "weight_decay": None, "clipnorm": None,
        "global_clipnorm": None, "clipvalue": None, "beta_1": 0.9, "beta_2": 0.99}


KERAS_ONLY = {"use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
              "gradient_accumulation_steps"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras reading its own variables with NumPy 2
@pytest.mark.parametrize("cls", ["Nadam", "Adamax", "Adadelta", "Lion"])
def test_config_equals_keras_config(cls):
    """Our config has Keras' entries (less its EMA, loss-scaling and accumulation ones) and values,
    at the defaults and at other values; Keras' config builds the same optimizer. (Keras numbers
    unnamed optimizers, "lion_5", and reads learning_rate back from a float32 variable.)"""
    keras = keras_module()
    for arguments in ({}, dict(learning_rate=0.05, weight_decay=0.01, clipnorm=2.0, name="mine")):
        theirs = {k: v for k, v in getattr(keras.optimizers, cls)(**arguments).get_config().items()
                  if k not in KERAS_ONLY}
        ours = getattr(O, cls)(**arguments).get_config()
        assert set(theirs) == set(ours)
        assert theirs["learning_rate"] == pytest.approx(ours["learning_rate"], rel=1e-7)
        assert theirs["name"] == ours["name"] if "name" in arguments else theirs["name"].startswith(ours["name"])
        assert {k: v for k, v in theirs.items() if k not in ("name", "learning_rate")} == {
            k: v for k, v in ours.items() if k not in ("name", "learning_rate")}
        again = getattr(O, cls).from_config(getattr(keras.optimizers, cls)(**arguments).get_config()).get_config()
        assert {**again, "learning_rate": ours["learning_rate"], "name": ours["name"]} == ours


def test_schedules_are_reachable_from_optimizers():
    """Keras programs write keras.optimizers.schedules.ExponentialDecay."""
    assert O.schedules is S
    assert O.schedules.ExponentialDecay is S.ExponentialDecay


def test_get_accepts_instances_and_config_dicts():
    opt = O.Adam(0.01)
    assert O.get(opt) is opt
    again = O.get({"class_name": "Adam", "config": {"learning_rate": 0.02, "amsgrad": True}})
    assert isinstance(again, O.Adam) and again.learning_rate == 0.02 and again.amsgrad
    assert isinstance(O.get({"class_name": "sgd", "config": {}}), O.SGD)
    # a Keras 3 optimizer config
    keras_config = {"name": "adam", "learning_rate": 0.001, "weight_decay": None, "clipnorm": None,
                    "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                    "ema_overwrite_frequency": None, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999,
                    "epsilon": 1e-07, "amsgrad": False}
    assert O.Adam.from_config(keras_config).get_config() == O.Adam().get_config()
    with pytest.raises(InvalidArgumentError, match="use_ema"):
        O.Adam.from_config({**keras_config, "use_ema": True})


@pytest.mark.parametrize("s", SETTINGS)
def test_config_round_trips_through_json(s):
    opt = make(s)
    text = json.dumps(O.serialize(opt))
    again = O.deserialize(json.loads(text))
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert O.get(json.loads(text)).get_config() == opt.get_config()
    params, grads = problem(steps=3)
    with B.use("numpy", floatx="float64"):
        assert_trajectories(run_ours(again, params, grads), run_ours(opt, params, grads), 0, 0, "round trip")


@pytest.mark.parametrize("schedule", [s for s, _ in SCHEDULES])
def test_schedule_config_round_trips_through_json(schedule):
    again = S.deserialize(json.loads(json.dumps(S.serialize(schedule))))
    assert again == schedule and S.get(again) is again
    assert type(schedule).from_config(schedule.get_config()) == schedule


# ---------------------------------------------------------------------------------------------
# bad hyperparameters: (constructor, argument, expected, received, error class)

BAD = [
    (lambda: O.SGD(learning_rate=-1), "learning_rate", "a non-negative float", "-1", InvalidArgumentError),
    (lambda: O.Adam(learning_rate=float("nan")), "learning_rate", "a non-negative float", "nan", InvalidArgumentError),
    (lambda: O.Adam(learning_rate=float("inf")), "learning_rate", "a non-negative float", "inf", InvalidArgumentError),
    (lambda: O.Adam(learning_rate="0.1"), "learning_rate", "a non-negative float", "'0.1'", InvalidTypeError),
    (lambda: O.SGD(learning_rate=None), "learning_rate", "a non-negative float", "None", InvalidTypeError),
    (lambda: O.SGD(momentum=1.0), "momentum", "a float in [0, 1)", "1.0", InvalidArgumentError),
    (lambda: O.SGD(momentum=-0.1), "momentum", "a float in [0, 1)", "-0.1", InvalidArgumentError),
    (lambda: O.SGD(nesterov="yes"), "nesterov", "a bool", "'yes'", InvalidTypeError),
    (lambda: O.SGD(weight_decay=-0.1), "weight_decay", "a non-negative float", "-0.1", InvalidArgumentError),
    (lambda: O.RMSprop(rho=1.5), "rho", "a float in [0, 1)", "1.5", InvalidArgumentError),
    (lambda: O.RMSprop(rho=float("nan")), "rho", "a float in [0, 1)", "nan", InvalidArgumentError),
    (lambda: O.RMSprop(momentum=1), "momentum", "a float in [0, 1)", "1", InvalidArgumentError),
    (lambda: O.RMSprop(epsilon=-1e-7), "epsilon", "a non-negative float", "-1e-07", InvalidArgumentError),
    (lambda: O.RMSprop(centered=1), "centered", "a bool", "1", InvalidTypeError),
    (lambda: O.Adagrad(initial_accumulator_value=-0.1), "initial_accumulator_value", "a non-negative float",
     "-0.1", InvalidArgumentError),
    (lambda: O.Adagrad(epsilon="small"), "epsilon", "a non-negative float", "'small'", InvalidTypeError),
    (lambda: O.Adam(beta_1=1.0), "beta_1", "a float in [0, 1)", "1.0", InvalidArgumentError),
    (lambda: O.Adam(beta_2=-0.5), "beta_2", "a float in [0, 1)", "-0.5", InvalidArgumentError),
    (lambda: O.Adam(beta_1=True), "beta_1", "a float in [0, 1)", "True", InvalidTypeError),
    (lambda: O.Adam(amsgrad="no"), "amsgrad", "a bool", "'no'", InvalidTypeError),
    (lambda: O.Adam(epsilon_hat=None), "epsilon_hat", "a bool", "None", InvalidTypeError),
    (lambda: O.AdamW(weight_decay=None), "weight_decay", "a non-negative float", "None", InvalidTypeError),
    (lambda: O.Adam(clipnorm=0.0), "clipnorm", "None or a positive float", "0.0", InvalidArgumentError),
    (lambda: O.Adam(clipvalue=-1), "clipvalue", "None or a positive float", "-1", InvalidArgumentError),
    (lambda: O.Adam(global_clipnorm="1"), "global_clipnorm", "None or a positive float", "'1'", InvalidTypeError),
    (lambda: O.Adam(clipnorm=1.0, global_clipnorm=1.0), "global_clipnorm", "None: only one of", "1.0",
     InvalidArgumentError),
    (lambda: O.SGD(clipnorm=1.0, clipvalue=0.5), "clipvalue", "None: only one of", "0.5", InvalidArgumentError),
    (lambda: O.Nadam(beta_1=1.0), "beta_1", "a float in [0, 1)", "1.0", InvalidArgumentError),
    (lambda: O.Nadam(beta_2=-0.1), "beta_2", "a float in [0, 1)", "-0.1", InvalidArgumentError),
    (lambda: O.Nadam(epsilon=-1e-7), "epsilon", "a non-negative float", "-1e-07", InvalidArgumentError),
    (lambda: O.Nadam(learning_rate=-0.1), "learning_rate", "a non-negative float", "-0.1", InvalidArgumentError),
    (lambda: O.Adamax(beta_1=1.5), "beta_1", "a float in [0, 1)", "1.5", InvalidArgumentError),
    (lambda: O.Adamax(beta_2=float("nan")), "beta_2", "a float in [0, 1)", "nan", InvalidArgumentError),
    (lambda: O.Adamax(epsilon="tiny"), "epsilon", "a non-negative float", "'tiny'", InvalidTypeError),
    (lambda: O.Adadelta(rho=1.0), "rho", "a float in [0, 1)", "1.0", InvalidArgumentError),
    (lambda: O.Adadelta(rho=None), "rho", "a float in [0, 1)", "None", InvalidTypeError),
    (lambda: O.Adadelta(epsilon=-1.0), "epsilon", "a non-negative float", "-1.0", InvalidArgumentError),
    (lambda: O.Adadelta(clipvalue=0), "clipvalue", "None or a positive float", "0", InvalidArgumentError),
    (lambda: O.Lion(beta_1=0.0), "beta_1", "a float in (0, 1]", "0.0", InvalidArgumentError),
    (lambda: O.Lion(beta_1=1.01), "beta_1", "a float in (0, 1]", "1.01", InvalidArgumentError),
    (lambda: O.Lion(beta_1="0.9"), "beta_1", "a float in (0, 1]", "'0.9'", InvalidTypeError),
    (lambda: O.Lion(beta_2=1.0), "beta_2", "a float in [0, 1)", "1.0", InvalidArgumentError),
    (lambda: O.Lion(weight_decay=-0.5), "weight_decay", "a non-negative float", "-0.5", InvalidArgumentError),
    (lambda: O.get("ftrl"), "optimizer", "one of ['adadelta', 'adagrad', 'adam', 'adamax', 'adamw', 'lion', "
     "'nadam', 'rmsprop', 'sgd']", "'ftrl'", InvalidArgumentError),
    (lambda: O.get(3), "optimizer", "a name (one of ['adadelta', 'adagrad', 'adam', 'adamax', 'adamw', 'lion', "
     "'nadam', 'rmsprop', 'sgd']), a config dict", "3", InvalidTypeError),
    (lambda: O.get({"class_name": "Ftrl", "config": {}}), "class_name", "the name of a portanet optimizer class, one of",
     "'Ftrl'", InvalidArgumentError),
    (lambda: S.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate", "a non-negative float", "-0.1",
     InvalidArgumentError),
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps", "a positive number", "0", InvalidArgumentError),
    (lambda: S.ExponentialDecay(0.1, 10, 0.5, staircase="yes"), "staircase", "a bool", "'yes'", InvalidTypeError),
    (lambda: S.CosineDecay(0.1, -5), "decay_steps", "a positive number", "-5", InvalidArgumentError),
    (lambda: S.CosineDecay(0.1, 10, warmup_target=-1.0, warmup_steps=2), "warmup_target",
     "a non-negative float", "-1.0", InvalidArgumentError),
    (lambda: S.CosineDecay(0.1, 10, alpha=float("nan")), "alpha", "a non-negative float", "nan",
     InvalidArgumentError),
    (lambda: S.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "values", "one more value than boundaries",
     "[0.1, 0.2]", InvalidArgumentError),
    (lambda: S.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3]), "boundaries", "a non-decreasing list",
     "[5, 2]", InvalidArgumentError),
    (lambda: S.PiecewiseConstantDecay("5", [0.1, 0.2]), "boundaries", "a list of numbers", "'5'", InvalidTypeError),
]


@pytest.mark.parametrize("build, argument, expected, received, error", BAD,
                         ids=[f"{b[1]}={b[3]}" for b in BAD])
def test_bad_hyperparameters_raise_at_construction(build, argument, expected, received, error):
    with pytest.raises(error) as info:
        build()
    text = str(info.value)
    assert text.startswith(f"Invalid value for `{argument}`. Expected {expected}"), text
    assert text.endswith(f"Received: {argument}={received}"), text
    assert isinstance(info.value, ValueError if error is InvalidArgumentError else TypeError)


def test_message_format_of_the_issue():
    with pytest.raises(InvalidArgumentError) as info:
        O.SGD(learning_rate=-1)
    assert str(info.value) == ("Invalid value for `learning_rate`. Expected a non-negative float. "
                               "Received: learning_rate=-1")


def test_with_learning_rate_refuses_bad_values():
    opt = O.SGD()
    with B.use("numpy", floatx="float32"):
        state = opt.init({"w": np.ones(2, dtype=np.float32)})
        with pytest.raises(InvalidArgumentError, match="learning_rate=-0.5"):
            opt.with_learning_rate(state, -0.5)
        with pytest.raises(InvalidTypeError):
            opt.with_learning_rate(state, "fast")


@pytest.mark.parametrize("old, hint", [("lr", "Expected learning_rate=..."), ("decay", "Expected a schedule")])
def test_keras_2_argument_names_name_the_new_ones(old, hint):
    with pytest.raises(TypeError, match=f"Invalid argument `{old}` for Adam. {hint}"):
        O.Adam(**{old: 0.01})
    with pytest.raises(TypeError, match=f"`{old}` for SGD"):
        O.SGD(**{old: 0.01})


def test_every_optimizer_documents_the_arguments_they_share():
    classes, todo = [], [O.Optimizer]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo += cls.__subclasses__()
    assert len(classes) >= 10
    for cls in classes:
        assert "{base_args}" not in cls.__doc__ and "global_clipnorm" in cls.__doc__, cls


def test_replaced_parameters_and_slots_are_freed_at_once():
    """An update leaves no reference cycle holding the arrays it replaced: with the garbage
    collector off, the parameters and slots of earlier steps are gone (a cycle in tree_unflatten
    once made a training run's memory grow by every epoch's updates until the collector ran)."""
    with B.use("numpy", floatx="float32"):
        rng = np.random.default_rng(0)
        params = {"dense": {"kernel": rng.standard_normal((60, 70)).astype(np.float32),
                            "bias": np.zeros(70, np.float32)}}
        grads = tree_map(lambda p: np.ones_like(p), params)
        opt = O.Adam(1e-3)
        state = opt.init(params)
        old = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                old += [weakref.ref(a) for a in tree_leaves((params, state["momentum"], state["velocity"]))]
                params, state = opt.update(params, grads, state)
            alive = sum(ref() is not None for ref in old)
        finally:
            gc.enable()
        assert alive == 0, f"{alive} replaced arrays still referenced"
