"""Shared test helpers: cross-backend comparison and finite-difference gradient checks."""
import numpy as np

from portanet import backend as B
from portanet.tree import tree_leaves, tree_map

# float32 results compared with the NumPy float64 reference
RTOL32, ATOL32 = 2e-4, 2e-5


def to_device(tree, dtype=None):
    b = B.get()
    return tree_map(lambda a: b.asarray(a, dtype=dtype) if isinstance(a, np.ndarray) else a, tree)


def to_host(tree):
    b = B.get()
    return tree_map(lambda a: b.to_numpy(a) if hasattr(a, "shape") else a, tree)


def run_on(name, fn, inputs, floatx):
    """fn(*inputs) on backend `name` at `floatx`, inputs converted there, outputs back on the host."""
    with B.use(name, floatx=floatx) as b:
        dtype = b.float_dtype()
        args = tree_map(lambda a: b.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)
                        if isinstance(a, np.ndarray) else a, inputs)
        return to_host(fn(*args))


def assert_matches_reference(backend, fn, *inputs, rtol=RTOL32, atol=ATOL32):
    """fn on `backend` (its current floatx) equals fn on NumPy float64, leaf by leaf."""
    reference = run_on("numpy", fn, inputs, "float64")
    result = run_on(backend.name, fn, inputs, B.floatx())
    ref_leaves, res_leaves = tree_leaves(reference), tree_leaves(result)
    assert len(ref_leaves) == len(res_leaves)
    for i, (r, x) in enumerate(zip(ref_leaves, res_leaves)):
        np.testing.assert_allclose(np.asarray(x, dtype=np.float64), r, rtol=rtol, atol=atol,
                                   err_msg=f"output leaf {i} on {backend.name}")


def directional_check(loss, inputs, grads, seed=0, eps=1e-6, n_directions=3, rtol=1e-6, atol=1e-8):
    """Central differences of scalar `loss(inputs)` along random directions equal <grads, d>.

    `inputs` and `grads` are trees of host float64 arrays with the same structure; `loss` takes a
    tree of host arrays and returns a float. Call it at float64.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_directions):
        d = tree_map(lambda a: rng.standard_normal(a.shape), inputs)
        plus = loss(tree_map(lambda a, v: a + eps * v, inputs, d))
        minus = loss(tree_map(lambda a, v: a - eps * v, inputs, d))
        numeric = (plus - minus) / (2 * eps)
        aligned = tree_leaves(tree_map(lambda _, g: g, inputs, grads))  # by key, not dict order
        analytic = sum(float(np.sum(g * v)) for g, v in zip(aligned, tree_leaves(d)))
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


def check_layer_gradients(layer, x, seed=0, rtol=1e-6, atol=1e-8):
    """Finite-difference check of a built layer's dx and parameter gradients at float64.

    The scalar checked is sum(forward(x) * R) for a fixed random R, so dL/dy = R.
    """
    b = B.get()
    with B.use("numpy", floatx=B.floatx()) as host:  # drawn on the host, as models do
        params = tree_map(lambda a: host.to_numpy(a).astype(np.float64), layer.init(_key(seed)))
    # JAX: each pass compiled once (op-by-op dispatch compiles every operation of every shape)
    forward = b.jit(lambda p, x: layer.forward(p, x)[0])
    backward = b.jit(lambda p, x, dy: layer.backward(p, layer.forward(p, x)[1], dy))
    rng = np.random.default_rng(seed + 1)
    r = rng.standard_normal(tuple(forward(to_device(params), to_device(x)).shape))
    dx, grads = backward(to_device(params), to_device(x), b.asarray(r))

    def loss(tree):
        return float(np.sum(b.to_numpy(forward(to_device(tree["params"]), to_device(tree["x"]))) * r))

    inputs, analytic = {"params": params}, {"params": to_host(grads)}
    if dx is not None:
        inputs["x"], analytic["x"] = x, to_host(dx)
    assert set(analytic["params"]) == set(params)
    directional_check(loss, inputs, analytic, seed=seed, rtol=rtol, atol=atol)


def _key(seed):
    from portanet import random
    return random.key(seed)
