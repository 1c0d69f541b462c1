import math

import numpy as np
import pytest

from portanet import backend as B
from portanet import random as R

SEEDS = [0, 1, 42, 2**32 + 7, 2**64 - 1]
SHAPES = [(1,), (7,), (3, 5), (2, 3, 4), (1000,)]


def host_bits(name, seed, shape, jit=False):
    with B.use(name) as b:
        f = b.jit(lambda k: R.bits(k, shape)) if jit else (lambda k: R.bits(k, shape))
        return b.to_numpy(f(R.key(seed)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bits_identical_across_backends(backend, seed, shape):
    reference = host_bits("numpy", seed, shape)
    assert reference.dtype == np.uint32 and reference.shape == shape
    np.testing.assert_array_equal(host_bits(backend.name, seed, shape), reference)
    np.testing.assert_array_equal(host_bits(backend.name, seed, shape, jit=True), reference)


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1])
def test_streams_equal_jax_random(seed):
    """An independent oracle: JAX's own (partitionable) Threefry-2x32. (Seeds of 2**32 and more
    match JAX only with jax_enable_x64 on: without it JAX truncates the seed to 32 bits.)"""
    jax = pytest.importorskip("jax")
    k = jax.random.PRNGKey(seed)
    with B.use("numpy") as b:
        ours = R.key(seed)
        np.testing.assert_array_equal(b.to_numpy(ours), np.asarray(jax.random.key_data(k)))
        for shape in [(3, 33), (300, 500)]:   # the second is larger than the NumPy fast path's block
            np.testing.assert_array_equal(b.to_numpy(R.bits(ours, shape)),
                                          np.asarray(jax.random.bits(k, shape, dtype=np.uint32)))
        np.testing.assert_array_equal(b.to_numpy(R.split(ours, 5)), np.asarray(jax.random.split(k, 5)))
        np.testing.assert_array_equal(b.to_numpy(R.fold_in(ours, 12345)), np.asarray(jax.random.fold_in(k, 12345)))


def test_threefry_fast_path_gives_the_portable_words(backend):
    """The backend's Threefry fast path (NumPy: the rounds in place) against the portable rounds,
    for bits larger than a block, split and fold_in."""
    if "threefry2x32" not in backend.fast:
        pytest.skip(f"the {backend.name} backend has no Threefry fast path")

    def draws():
        k = R.key(2**40 + 3)
        return [backend.to_numpy(a) for a in (R.bits(k, (300, 500)), R.split(k, 5), R.fold_in(k, 2**31 + 5))]

    fast = draws()
    with B.portable():
        portable = draws()
    for f, p in zip(fast, portable):
        np.testing.assert_array_equal(f, p)


def test_split_and_fold_in_identical_across_backends(backend):
    def derive(b):
        k = R.key(3)
        keys = R.split(k, 4)
        return [b.to_numpy(keys), b.to_numpy(R.fold_in(keys[2, ...], 9)), b.to_numpy(R.permutation(k, 50))]

    with B.use("numpy") as ref:
        expected = derive(ref)
    for a, b in zip(derive(backend), expected):
        np.testing.assert_array_equal(a, b)


def test_uniform_and_dropout_masks_identical(backend):
    with B.use("numpy") as ref:
        u_ref = ref.to_numpy(R.uniform(R.key(1), (4, 100)))
        m_ref = ref.to_numpy(R.bernoulli(R.key(2), 0.7, (4, 100)))
    u = backend.to_numpy(R.uniform(R.key(1), (4, 100)))
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_array_equal(backend.to_numpy(R.bernoulli(R.key(2), 0.7, (4, 100))), m_ref)


def test_normal_close_across_backends(backend):
    with B.use("numpy") as ref:
        expected = ref.to_numpy(R.normal(R.key(4), (1000,)))
    np.testing.assert_allclose(backend.to_numpy(R.normal(R.key(4), (1000,))), expected, rtol=1e-5, atol=1e-5)


def ks_statistic(sample, cdf):
    x = np.sort(sample)
    n = len(x)
    f = cdf(x)
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


def normal_cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_distributions(dtype):
    n = 10**6
    with B.use("numpy") as b:
        u = b.to_numpy(R.uniform(R.key(7), (n,), dtype=dtype)).astype(np.float64)
        z = b.to_numpy(R.normal(R.key(8), (n,), dtype=dtype)).astype(np.float64)
        t = b.to_numpy(R.truncated_normal(R.key(9), (n,), dtype=dtype))
        m = b.to_numpy(R.bernoulli(R.key(10), 0.3, (n,)))
        p = b.to_numpy(R.permutation(R.key(11), 1000))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.002 and abs(u.var() - 1 / 12) < 0.001
    assert abs(z.mean()) < 0.005 and abs(z.var() - 1) < 0.005
    # critical value of the KS statistic at alpha = 0.001 is 1.95 / sqrt(n)
    assert ks_statistic(u, lambda x: x) < 1.95 / math.sqrt(n)
    assert ks_statistic(z[:100000], normal_cdf) < 1.95 / math.sqrt(100000)
    assert np.abs(t).max() <= 2.0 and abs(t.std() - 0.8796) < 0.005
    assert abs(m.mean() - 0.3) < 0.002
    assert sorted(p.tolist()) == list(range(1000))


def test_uniform_range_and_bad_arguments():
    with B.use("numpy") as b:
        u = b.to_numpy(R.uniform(R.key(0), (1000,), minval=-2.0, maxval=3.0))
        assert u.min() >= -2.0 and u.max() < 3.0 and u.min() < -1.9
        with pytest.raises(ValueError, match="Received: seed='a'"):
            R.key("a")
        with pytest.raises(ValueError, match="Received: shape=\\(-1,\\)"):
            R.bits(R.key(0), (-1,))
        with pytest.raises(ValueError, match="Expected float32 or float64"):
            R.uniform(R.key(0), (3,), dtype="int32")
