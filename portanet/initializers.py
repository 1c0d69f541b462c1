"""Weight initializers, all drawn with portanet.random: the same seed, the same weights everywhere.

Fans: a Dense kernel (in, out) has fan_in = in, fan_out = out; a Conv2D kernel (out, in, kh, kw)
has fan_in = in*kh*kw and fan_out = out*kh*kw (PyTorch's rule for that layout). The variance
scalings follow Keras (glorot_normal, he_normal and lecun_normal are truncated normals).
"""
import math

from . import random
from .backend import get as _backend
from .errors import InvalidTypeError, invalid

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


class Initializer:
    def __call__(self, key, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {"class_name": type(self).__name__, "config": dict(vars(self))}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, key, shape, dtype=None):
        b = _backend()
        return b.xp.full(tuple(shape), self.value, dtype=dtype or b.float_dtype())


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {"class_name": "Zeros", "config": {}}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {"class_name": "Ones", "config": {}}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, key, shape, dtype=None):
        return self.mean + self.stddev * random.normal(key, tuple(shape), dtype)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, key, shape, dtype=None):
        return random.uniform(key, tuple(shape), dtype, self.minval, self.maxval)


class VarianceScaling(Initializer):
    """Draws with variance scale / n, n = fan_in, fan_out or their mean (Keras' VarianceScaling)."""

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
    def make():
        return VarianceScaling(scale, mode, distribution)
    make.__name__ = name
    return make


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
}
_CLASSES = {"Zeros": Zeros, "Ones": Ones, "Constant": Constant, "RandomNormal": RandomNormal,
            "RandomUniform": RandomUniform, "VarianceScaling": VarianceScaling}


def get(identifier):
    """An Initializer from a name ("he_normal"), a config dict, or an Initializer."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise invalid("initializer", f"one of {sorted(_BY_NAME)}", identifier)
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise invalid("initializer", f"a name (one of {sorted(_BY_NAME)}) or an Initializer", identifier,
                  InvalidTypeError)


def serialize(initializer):
    return initializer.get_config()


zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform = RandomNormal, RandomUniform
glorot_uniform, glorot_normal, he_normal, he_uniform = GlorotUniform, GlorotNormal, HeNormal, HeUniform
lecun_normal, lecun_uniform = LecunNormal, LecunUniform
