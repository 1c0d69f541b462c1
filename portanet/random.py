"""Portable random numbers: one counter-based generator, the same bits on every backend.

The generator is Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy
as 1, 2, 3", SC 2011), written only with uint32 Array API operations, so it runs on the device and
inside `jit`. A key is a uint32 array of shape (2,). (A backend whose uint32 lacks addition and
shifts, PyTorch's, holds the 32-bit words in a wider integer type, `Backend.word_dtype`, masked to
32 bits after every addition and rotation: the same words, the same streams.) The streams are the ones `jax.random` draws
with its default (partitionable) Threefry: for the same key, `bits` equals `jax.random.bits`.

    k = random.key(0)
    k_init, k_drop = random.split(k)
    w = random.normal(k_init, (784, 10))
"""
import itertools
import math
import secrets

from .backend import get as _backend
from .backend import portable_op
from .errors import invalid

ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_seeds = None  # after set_seed: a counter giving reproducible seeds to models built later
PARITY = 0x1BD11BDA


def threefry2x32(k0, k1, c0, c1):
    """Threefry-2x32, 20 rounds: encrypt counter words (c0, c1) under key words (k0, k1).
    Fast path "threefry2x32" (NumPy: the same rounds in place)."""
    return _backend().op("threefry2x32")(k0, k1, c0, c1)


@portable_op("threefry2x32")
def _threefry2x32(k0, k1, c0, c1):
    mask = _backend().word_mask  # None where words are uint32 and wrap by themselves

    def wrap(x):
        return x if mask is None else x & mask

    def rotl(x, r):
        return wrap((x << r) | (x >> (32 - r)))

    ks = (k0, k1, k0 ^ k1 ^ PARITY)
    x0, x1 = wrap(c0 + ks[0]), wrap(c1 + ks[1])
    for group in range(5):
        for r in ROTATIONS[group % 2]:
            x0 = wrap(x0 + x1)
            x1 = rotl(x1, r) ^ x0
        # key injection after every 4 rounds
        x0 = wrap(x0 + ks[(group + 1) % 3])
        x1 = wrap(x1 + ks[(group + 2) % 3] + (group + 1))
    return x0, x1


def key(seed):
    """A key from an integer seed (taken modulo 2**64), as `jax.random.PRNGKey(seed)`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise invalid("seed", "a Python int", seed)
    seed %= 2**64
    return _backend().asarray([seed >> 32, seed & 0xFFFFFFFF], dtype=_backend().word_dtype)


def _hash_counters(key, n):
    """Threefry of counters (0, i) for i in 0..n-1 under `key`: two uint32 arrays of shape (n,)."""
    xp = _backend().xp
    if n >= 2**32:
        raise invalid("shape", "fewer than 2**32 elements", n)
    counter = xp.arange(n, dtype=_backend().word_dtype)
    k0, k1 = _words(key)

    def encrypt(c0, c1):
        return threefry2x32(k0, k1, c0, c1)

    # NumPy: the same arithmetic on cache-sized blocks
    return _backend().op("blockwise")(encrypt, xp.zeros_like(counter), counter)


def _words(key):
    # shape-(1,) slices, not 0-d scalars: NumPy warns when 0-d uint32 arithmetic wraps around
    return key[0:1], key[1:2]


def _size(shape):
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise invalid("shape", "a tuple of non-negative ints", shape)
    return shape, math.prod(shape)


def bits(key, shape):
    """Uniform random uint32 array of `shape`."""
    shape, n = _size(shape)
    x0, x1 = _hash_counters(key, n)
    return _backend().xp.reshape(x0 ^ x1, shape)


def split(key, num=2):
    """`num` new independent keys, shape (num, 2)."""
    xp = _backend().xp
    x0, x1 = _hash_counters(key, num)
    return xp.stack([x0, x1], axis=1)


def fold_in(key, data):
    """A new key derived from `key` and an integer (or uint32 array) `data`, e.g. a step count."""
    xp = _backend().xp
    data = xp.reshape(xp.asarray(data, dtype=_backend().word_dtype), (1,))
    x0, x1 = threefry2x32(*_words(key), xp.zeros_like(data), data)
    return xp.concat([x0, x1])


def _float_dtype(dtype):
    backend = _backend()
    dtype = backend.float_dtype() if dtype is None else dtype
    if isinstance(dtype, str):
        dtype = getattr(backend.xp, dtype)
    if dtype not in (backend.xp.float32, backend.xp.float64):
        raise invalid("dtype", "float32 or float64", dtype)
    if dtype == backend.xp.float64:
        backend.enable_float64()
    return dtype


def uniform(key, shape, dtype=None, minval=0.0, maxval=1.0):
    """Uniform floats in [minval, maxval): 24 random bits for float32, 53 for float64."""
    xp = _backend().xp
    dtype = _float_dtype(dtype)
    shape, _ = _size(shape)
    if dtype == xp.float32:
        u = xp.astype(bits(key, shape) >> 8, dtype) * (2.0**-24)
    else:
        words = bits(key, (2, *shape))
        hi, lo = xp.astype(words[0, ...] >> 5, dtype), xp.astype(words[1, ...] >> 6, dtype)
        u = (hi * 2.0**26 + lo) * 2.0**-53
    return u * (maxval - minval) + minval if (minval, maxval) != (0.0, 1.0) else u


def normal(key, shape, dtype=None):
    """Standard normal floats (Box-Muller transform of two uniforms)."""
    xp = _backend().xp
    keys = split(key)
    u1 = 1.0 - uniform(keys[0, ...], shape, dtype)  # in (0, 1]: log is finite
    u2 = uniform(keys[1, ...], shape, dtype)
    return xp.sqrt(-2.0 * xp.log(u1)) * xp.cos((2.0 * math.pi) * u2)


def truncated_normal(key, shape, dtype=None, bound=2.0):
    """Standard normal restricted to [-bound, bound] (Keras' TruncatedNormal): out-of-range draws
    are redrawn four times, then clipped (about 4e-6 of them at bound=2)."""
    xp = _backend().xp
    keys = split(key, 5)
    z = normal(keys[0, ...], shape, dtype)
    for i in range(1, 5):
        z = xp.where(xp.abs(z) > bound, normal(keys[i, ...], shape, dtype), z)
    return xp.clip(z, -bound, bound)


def bernoulli(key, p, shape):
    """Boolean array, True with probability `p` (from float32 uniforms whatever floatx is: the
    same key draws the same mask in float32 and float64)."""
    return uniform(key, shape, "float32") < p


def permutation(key, n):
    """A random permutation of 0..n-1 (int64 where the backend has it)."""
    xp = _backend().xp
    return xp.argsort(bits(key, (n,)), stable=True)


def set_seed(seed):
    """Make everything drawn later reproducible (model weights, dropout, shuffling), as
    `keras.utils.set_random_seed`: each model built afterwards gets the next seed of a sequence."""
    global _seeds
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise invalid("seed", "a Python int", seed)
    _seeds = (seed * 1_000_003 + i for i in itertools.count())


def next_seed():
    """The next seed of the sequence started by `set_seed`, or a fresh random one without it."""
    return next(_seeds) % 2**31 if _seeds is not None else secrets.randbits(31)
