"""Weight initializers, all drawn with portanet.random: the same seed, the same weights everywhere.

Fans: a Dense kernel (in, out) has fan_in = in, fan_out = out; a Conv2D kernel (out, in, kh, kw)
has fan_in = in*kh*kw and fan_out = out*kh*kw (PyTorch's rule for that layout). The variance
scalings follow Keras (glorot_normal, he_normal and lecun_normal are truncated normals):

    GlorotUniform()  VarianceScaling(1.0, "fan_avg", "uniform")           (the default of kernels)
    GlorotNormal()   VarianceScaling(1.0, "fan_avg", "truncated_normal")
    HeNormal()       VarianceScaling(2.0, "fan_in", "truncated_normal")
    HeUniform()      VarianceScaling(2.0, "fan_in", "uniform")
    LecunNormal()    VarianceScaling(1.0, "fan_in", "truncated_normal")
    LecunUniform()   VarianceScaling(1.0, "fan_in", "uniform")

Layers take an initializer by name ("he_normal"), config or object. Unlike Keras', initializers take no
`seed`: the key passed at each call decides the draw (`pn.set_seed` fixes the keys).
"""
import math

from . import random
from .backend import get as _backend
from .errors import invalid
from .registry import Registry, Serializable, snake_case

# std of a standard normal truncated to [-2, 2]; Keras divides by it to keep the variance
_TRUNCATED_STD = 0.87962566103423978


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape`."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer(Serializable):
    """Base class: `initializer(key, shape, dtype=None)` draws an array; `get_config()` gives the
    constructor's arguments."""

    def __call__(self, key, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return dict(vars(self))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


REGISTRY = Registry("initializer", Initializer)


@REGISTRY.register("constant")
class Constant(Initializer):
    """Fills with a constant value.

    Args:
        value: the value (a float). Default 0.0.
    """

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, key, shape, dtype=None):
        b = _backend()
        return b.xp.full(tuple(shape), self.value, dtype=dtype or b.float_dtype())


@REGISTRY.register("zeros")
class Zeros(Constant):
    """Fills with 0 (the default of biases). No arguments."""

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


@REGISTRY.register("ones")
class Ones(Constant):
    """Fills with 1. No arguments."""

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


@REGISTRY.register("random_normal")
class RandomNormal(Initializer):
    """Draws from a normal distribution (not truncated).

    Args:
        mean: the mean. Default 0.0.
        stddev: the standard deviation. Default 0.05.
    """

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, key, shape, dtype=None):
        return self.mean + self.stddev * random.normal(key, tuple(shape), dtype)


@REGISTRY.register("random_uniform")
class RandomUniform(Initializer):
    """Draws from a uniform distribution on [minval, maxval) ("uniform" in Embedding).

    Args:
        minval: the lower bound. Default -0.05.
        maxval: the upper bound. Default 0.05.
    """

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, key, shape, dtype=None):
        return random.uniform(key, tuple(shape), dtype, self.minval, self.maxval)


@REGISTRY.register()
class VarianceScaling(Initializer):
    """Draws with variance scale / n, n = fan_in, fan_out or their mean (Keras' VarianceScaling).

    n is at least 1. "uniform" draws from [-limit, limit), limit = sqrt(3 * scale / n);
    "truncated_normal" from a normal truncated to 2 standard deviations, rescaled to the variance;
    "untruncated_normal" from N(0, scale / n).

    Args:
        scale: the scaling factor (a float). Default 1.0.
        mode: "fan_in" (the default), "fan_out" or "fan_avg".
        distribution: "truncated_normal" (the default), "untruncated_normal" or "uniform".

    Example:
        pn.layers.Dense(64, kernel_initializer=pn.initializers.VarianceScaling(2.0, "fan_out"))
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise invalid("mode", "'fan_in', 'fan_out' or 'fan_avg'", mode)
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise invalid("distribution", "'truncated_normal', 'untruncated_normal' or 'uniform'", distribution)
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, key, shape, dtype=None):
        shape = tuple(shape)
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return random.uniform(key, shape, dtype, -limit, limit)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * random.normal(key, shape, dtype)
        return (math.sqrt(variance) / _TRUNCATED_STD) * random.truncated_normal(key, shape, dtype)


def _scaling(name, scale, mode, distribution):
    """A preset of VarianceScaling, known to the registry by Keras' name for it."""
    def make():
        """Keras' initializer of this name: a VarianceScaling preset (the table in the module
        docstring gives its scale, mode and distribution). No arguments."""
        return VarianceScaling(scale, mode, distribution)
    make.__name__ = name
    REGISTRY.name(snake_case(name), make)
    return make


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")

get, serialize, deserialize = REGISTRY.get, REGISTRY.serialize, REGISTRY.deserialize

zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform = RandomNormal, RandomUniform
glorot_uniform, glorot_normal, he_normal, he_uniform = GlorotUniform, GlorotNormal, HeNormal, HeUniform
lecun_normal, lecun_uniform = LecunNormal, LecunUniform
