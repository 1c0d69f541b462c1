"""Checks for layers, your own included (docs/custom_layers.md), in the spirit of Chainer's
`gradient_check.check_backward`.

    pn.testing.check_layer(MyLayer(8), input_shape=(5,))
"""
import numpy as np

from . import backend as _backends, random
from .backend import use as _use
from .layers.base import Layer
from .tree import tree_leaves, tree_map, tree_unflatten


def check_layer(layer, input_shape, *, batch_size=2, training=False, integer_input=None, backends=None,
                seed=0, eps=1e-6, rtol=1e-6, atol=1e-8, backend_rtol=1e-7, backend_atol=1e-10) -> dict:
    """Check a layer's hand-written backward, in float64, on every usable backend.

    On each backend: the directional derivative of L = sum(forward(x) * r), for a fixed random r,
    along a random direction of the input and of every parameter in turn, by central
    differences (step `eps`), equals the one the backward pass gives, within `rtol` and `atol`.
    Across backends: the forward output and every gradient agree within `backend_rtol` and
    `backend_atol`. The weights are drawn once (from `seed`) and shared by every backend.

    Args:
        layer: a layer, or a function returning one.
        input_shape: one example's shape, without the batch axis (a list of shapes for a layer
            with several inputs).
        batch_size: examples in the checked batch.
        training: run the forward pass in training mode (batch statistics, dropout with a fixed key).
        integer_input: (low, high): the input is integer indices in [low, high) (Embedding), not
            differentiated.
        backends: names of the backends to check (default: every usable one: installed, and
            with a device).

    Returns:
        {backend name: {"y": ..., "dx": ..., "grads": ...}}, host (NumPy) arrays.

    Raises:
        AssertionError: naming the backend, the tensor (the input or a parameter), the
            tolerances and, for a failed finite-difference check, its worst element.
    """
    layer = layer if isinstance(layer, Layer) else layer()
    shapes = input_shape if layer.multi_input else [input_shape]
    if not layer.built:
        layer.build([tuple(s) for s in shapes] if layer.multi_input else tuple(shapes[0]))
    rng = np.random.default_rng(seed)
    if integer_input is None:
        xs = [rng.standard_normal((batch_size, *s)) for s in shapes]
    else:
        xs = [rng.integers(*integer_input, size=(batch_size, *s)).astype(np.float64) for s in shapes]
    with _use("numpy", floatx="float64") as host:
        params = tree_map(host.to_numpy, layer.init(random.key(seed)))
    names = backends if backends is not None else [n for n in _backends.available() if _usable(n)]
    results = {}
    for name in names:
        with _use(name, floatx="float64") as backend:
            results[name] = _check_on(backend, layer, params, xs, training, integer_input is None, rng_seed=seed,
                                      eps=eps, rtol=rtol, atol=atol)
    first = names[0]
    for name in names[1:]:
        for what in ("y", "dx", "grads"):
            for i, (a, b) in enumerate(zip(tree_leaves(results[first][what]), tree_leaves(results[name][what]))):
                if a is None or b is None:
                    continue
                worst = np.abs(a - b) - backend_atol - backend_rtol * np.abs(a)
                if worst.max() > 0:
                    where = np.unravel_index(np.argmax(worst), worst.shape)
                    raise AssertionError(
                        f"{layer.name}: {what} (leaf {i}) differs between {first} and {name} beyond "
                        f"rtol={backend_rtol}, atol={backend_atol}; worst element {where}: {a[where]!r} vs {b[where]!r}")
    return results


def _usable(name):
    try:
        _backends.load(name)
    except ImportError:
        return False
    return True


def _check_on(backend, layer, params, xs, training, differentiable, rng_seed, eps, rtol, atol):
    key = random.key(rng_seed + 1) if layer.needs_key else None
    multi = layer.multi_input

    def device(tree):
        return tree_map(lambda a: backend.asarray(a, dtype=backend.float_dtype()), tree)

    def forward(p, x):
        return layer.forward(p, x if multi else x[0], training=training, key=key)

    compiled = backend.jit(lambda p, x: forward(p, x)[0])   # JAX: compiled once, not op by op

    def run_forward(p, x):
        return backend.to_numpy(compiled(device(p), device(x)))

    y = run_forward(params, xs)
    r = np.random.default_rng(rng_seed + 2).standard_normal(y.shape)
    previous, layer.needs_input_grad = layer.needs_input_grad, differentiable
    try:
        dx, grads = backend.jit(lambda p, x, dy: layer.backward(p, forward(p, x)[1], dy))(
            device(params), device(xs), backend.asarray(r))
    finally:
        layer.needs_input_grad = previous
    dx = [None] * len(xs) if dx is None else list(dx) if multi else [dx]
    dx = [None if d is None else backend.to_numpy(d) for d in dx]
    checked = {k: v for k, v in params.items() if k not in layer.non_trainable}   # those with gradients
    grads = tree_map(lambda _, g: backend.to_numpy(g), checked, grads)  # by key (jit may sort dict keys)

    def loss(p, x):
        return float(np.sum(run_forward(p, x) * r))

    tensors = [(f"parameter {path}", "params", i) for i, path in enumerate(_paths(checked))]
    if differentiable:
        tensors += [(f"input {i}" if multi else "input", "x", i) for i in range(len(xs))]
    for label, kind, i in tensors:
        values = tree_leaves(checked)[i] if kind == "params" else xs[i]
        analytic = tree_leaves(grads)[i] if kind == "params" else dx[i]
        if analytic is None:
            raise AssertionError(f"{layer.name} on {backend.name}: backward returned no gradient for {label}")

        def along(delta, kind=kind, i=i):
            if kind == "params":
                leaves = tree_leaves(checked)
                moved = tree_unflatten(checked, [v + delta if j == i else v for j, v in enumerate(leaves)])
                return loss({**params, **moved}, xs)
            return loss(params, [x + delta if j == i else x for j, x in enumerate(xs)])

        direction = np.random.default_rng(rng_seed + 3 + i).standard_normal(values.shape)
        numeric = (along(eps * direction) - along(-eps * direction)) / (2 * eps)
        exact = float(np.sum(analytic * direction))
        if abs(exact - numeric) > atol + rtol * abs(numeric):
            raise AssertionError(_fd_failure(layer, backend, label, values, analytic, along, exact, numeric,
                                             eps, rtol, atol))
    return {"y": y, "dx": dx, "grads": grads}


def _paths(params):
    """"name" or "outer/inner" for each leaf of a (nested) parameter dict, in leaf order."""
    return [f"{k}/{p}" if isinstance(v, dict) else k for k, v in params.items()
            for p in (_paths(v) if isinstance(v, dict) else [None])]


def _fd_failure(layer, backend, label, values, analytic, along, exact, numeric, eps, rtol, atol):
    message = (f"{layer.name} on {backend.name}: the gradient of {label} (shape {tuple(values.shape)}) fails "
               f"the finite-difference check: along a random direction, backward gives {exact:.10g}, central "
               f"differences {numeric:.10g} (eps={eps}, rtol={rtol}, atol={atol})")
    if values.size > 4096:
        return message
    per_element = np.zeros(values.shape)
    for index in np.ndindex(values.shape):
        unit = np.zeros(values.shape)
        unit[index] = eps
        per_element[index] = (along(unit) - along(-unit)) / (2 * eps)
    error = np.abs(per_element - analytic)
    worst = np.unravel_index(np.argmax(error), error.shape)
    return (f"{message}; worst element {tuple(int(i) for i in worst)}: backward {analytic[worst]:.10g}, "
            f"finite differences {per_element[worst]:.10g} (of {values.size}; "
            f"{int(np.sum(error > atol + rtol * np.abs(per_element)))} outside the tolerance)")


__all__ = ["check_layer"]
