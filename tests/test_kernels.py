"""The NumPy backend's compiled loops (backends/numba_kernels.py, numba): the same bits as the NumPy
code they replace, on every layout they take; the fallback where they take none; PORTANET_NUMBA."""
import os
import subprocess
import sys

import numpy as np
import pytest

from portanet import backend as B
from portanet.optimizers.adam import _adam_moments, _adam_step
from portanet.optimizers.rmsprop import _rmsprop

NUMPY_BACKEND = pytest.importorskip("portanet.backends.numpy")
KERNELS = pytest.importorskip("portanet.backends.numba_kernels", exc_type=ImportError)


def compiled(name):
    return NUMPY_BACKEND.compiled_paths(KERNELS)[name]


def adam_in_numpy(p, g, m, v, lr, c1, c2, epsilon_hat):
    """The portable formulas of the "adam" operation, evaluated by NumPy."""
    with B.use("numpy"):
        m, v = _adam_moments(g, m, v, 0.9, 0.999)
        return _adam_step(p, m, v, lr, c1, c2, 1e-7, epsilon_hat), m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("epsilon_hat", [False, True])
@pytest.mark.parametrize("layout", ["flat", "transposed", "mixed"])
def test_adam_kernel_gives_the_bits_of_numpy(dtype, epsilon_hat, layout):
    """One pass over p, g, m, v: the bits of NumPy's dozen passes, in p's layout; where the four
    differ in layout ("mixed") the kernel declines and the fast path gives the portable result."""
    rng = np.random.default_rng(0)
    shape = (300, 70)
    p, g, m = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    v = rng.random(shape).astype(dtype)
    g[0, :3] = 0.0
    if layout == "transposed":
        p, g, m, v = (np.ascontiguousarray(a.T).T for a in (p, g, m, v))
    if layout == "mixed":
        g = np.asfortranarray(g)
    lr, c1, c2 = (np.asarray(x, dtype=dtype) for x in (1e-3, 0.271, 0.0030))
    want = adam_in_numpy(p, g, m, v, lr, c1, c2, epsilon_hat)
    with B.use("numpy"):
        got = compiled("adam")(p, g, m, v, lr, c1, c2, 0.9, 0.999, 1e-7, epsilon_hat)
    assert (KERNELS.adam(p, g, m, v, lr, c1, c2, 0.9, 0.999, 1e-7, epsilon_hat) is None) == (layout == "mixed")
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_array_equal(a, b)
    if layout == "transposed":
        assert got[0].flags.f_contiguous


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("layout", ["flat", "mixed"])
def test_rmsprop_kernel_gives_the_bits_of_numpy(centered, momentum, layout):
    """Every variant (centered, momentum) in one pass: NumPy's bits; the mixed layout falls back."""
    rng = np.random.default_rng(3)
    shape = (50, 41)
    p, g, a, m = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    v = rng.random(shape).astype(np.float32) + a * a
    a, m = (a if centered else None), (m if momentum else None)
    if layout == "mixed":
        v = np.asfortranarray(v)
    args = (p, g, v, a, m, np.asarray(1e-3, dtype=np.float32), 0.9, momentum, 1e-7)
    with B.use("numpy"):
        want = _rmsprop(*args)
        got = compiled("rmsprop")(*args)
    assert (KERNELS.rmsprop(*args) is None) == (layout == "mixed")
    for x, y in zip(got, want):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_a_large_parameter_is_updated_whole_with_the_bits_of_blockwise():
    """NumPy's foreach updates a parameter larger than a block whole where the update is one
    compiled operation (Adam's, RMSprop's), blockwise otherwise: the same bits either way."""
    rng = np.random.default_rng(1)
    n = 3 * NUMPY_BACKEND.BLOCK + 5
    columns = [tuple(rng.standard_normal(size).astype(np.float32) for _ in range(4)) for size in (n, 10, 7)]
    columns = [(p, g, m, np.abs(v)) for p, g, m, v in columns]
    calls = []

    def leaf(p, g, m, v):
        calls.append(p.size)
        return compiled("adam")(p, g, m, v, np.float32(1e-3), np.float32(0.1), np.float32(0.002), 0.9, 0.999,
                                1e-7, False)

    blockwise = NUMPY_BACKEND.foreach(leaf, columns)
    assert max(calls) == NUMPY_BACKEND.BLOCK
    leaf.one_operation, calls[:] = True, []
    whole = compiled("foreach")(leaf, columns)
    assert max(calls) == n
    for a, b in zip(blockwise, whole):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def batch_innermost(a):
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


# (N, C, H, W), pool, strides, pads: LeNet-5's layers, overlapping windows with padding, ties
POOLS = [((8, 6, 28, 28), (2, 2), (2, 2), ((0, 0), (0, 0))),
         ((5, 3, 9, 11), (3, 3), (2, 2), ((1, 1), (1, 0))),
         ((4, 2, 6, 6), (2, 2), (1, 2), ((0, 0), (0, 0)))]


@pytest.mark.parametrize("case", range(len(POOLS)))
def test_maxpool_backward_kernel_gives_the_bits_of_numpy(case):
    """The first maximum of each window takes its gradient, as in NumPy's fast path; small
    integers give ties. dy in either layout (a Flatten's gradient is batch-outermost)."""
    shape, pool, strides, pads = POOLS[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(shape).astype(np.float32)
    if case == 2:
        x = rng.integers(0, 3, shape).astype(np.float32)
    x = batch_innermost(x)
    y, cache = NUMPY_BACKEND.maxpool2d_forward(x, pool, strides, pads)
    for dy in (rng.standard_normal(y.shape).astype(np.float32), batch_innermost(rng.standard_normal(y.shape))):
        dy = dy.astype(np.float32)
        want = NUMPY_BACKEND.maxpool2d_backward(cache, dy, pool, strides, pads)
        got = compiled("maxpool2d_backward")(cache, dy, pool, strides, pads)
        assert got.shape == x.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("strides, pads", [((1, 1), ((0, 0), (0, 0))), ((2, 3), ((1, 2), (0, 1)))])
def test_convolution_dx_kernel_gives_the_bits_of_numpy(strides, pads):
    """conv2d_backward with the compiled add of each kernel row's gradient: NumPy's bits."""
    rng = np.random.default_rng(2)
    x = batch_innermost(rng.standard_normal((6, 3, 15, 13)).astype(np.float32))
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    z, cache = NUMPY_BACKEND.conv2d_forward(x, w, None, strides, pads)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    want = NUMPY_BACKEND.conv2d_backward(w, cache, dz, strides, pads)
    got = compiled("conv2d_backward")(w, cache, dz, strides, pads)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


TRAIN = """
import hashlib, numpy as np, portanet as pn
pn.set_seed(0)
x = np.random.default_rng(0).random((128, 1, 12, 12), dtype=np.float32)
y = np.random.default_rng(1).integers(0, 4, 128)
for optimizer in ("adam", pn.optimizers.AdamW(1e-3), pn.optimizers.RMSprop(1e-3, momentum=0.9, centered=True)):
    m = pn.Sequential([pn.Input((1, 12, 12)), pn.layers.Conv2D(4, 3, activation="relu"),
                       pn.layers.MaxPooling2D(3, strides=2), pn.layers.Conv2D(4, 2, padding="same"),
                       pn.layers.Flatten(), pn.layers.Dense(1100, activation="relu"), pn.layers.Dense(4, activation="softmax")])
    m.compile(optimizer, "sparse_categorical_crossentropy")
    print(m.fit(x, y, batch_size=32, epochs=2, verbose=0).history["loss"])
    print(hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest())
"""


def test_training_gives_the_same_bits_with_and_without_the_kernels():
    """A model with every compiled path (convolution dx, overlapping max pooling, Adam, AdamW and
    centered RMSprop with momentum, a Dense kernel larger than a block) trains to the same bits."""
    env = {**os.environ, "PORTANET_BACKEND": "numpy"}
    runs = [subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True, timeout=300,
                           env={**env, "PORTANET_NUMBA": value}) for value in ("0", "1")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    assert runs[0].stdout == runs[1].stdout


def test_other_dtypes_take_the_numpy_paths():
    """float16 (which numba cannot compile) goes the NumPy way, with NumPy's results."""
    rng = np.random.default_rng(4)
    x = batch_innermost(rng.standard_normal((2, 3, 8, 8)).astype(np.float16))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    y, cache = NUMPY_BACKEND.maxpool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    dy = np.ones_like(y)
    np.testing.assert_array_equal(compiled("maxpool2d_backward")(cache, dy, (2, 2), (2, 2), ((0, 0), (0, 0))),
                                  NUMPY_BACKEND.maxpool2d_backward(cache, dy, (2, 2), (2, 2), ((0, 0), (0, 0))))
    z, cache = NUMPY_BACKEND.conv2d_forward(x, w, None, (1, 1), ((0, 0), (0, 0)))
    dz = np.ones_like(z)
    for a, b in zip(compiled("conv2d_backward")(w, cache, dz, (1, 1), ((0, 0), (0, 0))),
                    NUMPY_BACKEND.conv2d_backward(w, cache, dz, (1, 1), ((0, 0), (0, 0)))):
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b)
    p, g, m, v = (np.ones(10, dtype=np.float16) for _ in range(4))
    with B.use("numpy"):
        got = compiled("adam")(p, g, m, v, np.float16(1e-3), np.float16(0.1), np.float16(0.01), 0.9, 0.999, 1e-7, False)
    assert all(a.dtype == np.float16 for a in got)


INFO = "import portanet as pn; b = pn.backend.get(); print(b.kernel_report()); print(b.op('adam').__name__)"


def test_portanet_numba_turns_the_kernels_off():
    env = {**os.environ, "PORTANET_BACKEND": "numpy"}
    runs = {value: subprocess.run([sys.executable, "-c", INFO], capture_output=True, text=True, timeout=180,
                                  env={**env, "PORTANET_NUMBA": value}) for value in ("", "0", "yes")}
    assert runs[""].stdout.startswith(f"numba {KERNELS.numba.__version__}: Adam's")
    assert runs[""].stdout.splitlines()[1] == "compiled_adam"
    assert runs["0"].stdout.splitlines() == ["off (PORTANET_NUMBA=0)", "_adam"]
    assert "Expected \"0\" or \"1\" (or unset). Received: PORTANET_NUMBA='yes'" in runs["yes"].stderr
