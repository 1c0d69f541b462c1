"""Activation functions with their derivatives.

Each activation is an object: `act(z)` is the forward pass and `act.backward(dy, z, y)` returns
dL/dz given dL/dy, the pre-activation z and the output y = act(z) (whichever is cheaper to use).
"""
import math

from .backend import get as _backend, portable_op
from .errors import InvalidTypeError
from .registry import Registry, Serializable


class Activation(Serializable):
    """Base class: `name` (Keras' name), `__call__(z)` and `backward(dy, z, y)`."""
    name = None

    def __call__(self, z):
        raise NotImplementedError

    def backward(self, dy, z, y):
        raise NotImplementedError

    def __repr__(self):
        return f"<activation {self.name}>"


REGISTRY = Registry("activation", Activation)


@REGISTRY.register("linear")
class Linear(Activation):
    name = "linear"

    def __call__(self, z):
        return z

    def backward(self, dy, z, y):
        return dy


@REGISTRY.register("relu")
class ReLU(Activation):
    """y = z above `threshold`, negative_slope * (z - threshold) below it, capped at `max_value`
    (Keras' relu; the defaults give max(z, 0)). dy/dz: 1, negative_slope, 0 above the cap."""
    name = "relu"

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0):
        self.negative_slope, self.max_value, self.threshold = negative_slope, max_value, threshold

    def get_config(self):
        return {"negative_slope": self.negative_slope, "max_value": self.max_value, "threshold": self.threshold}

    def __call__(self, z):
        xp = _backend().xp
        if (self.negative_slope, self.max_value, self.threshold) == (0.0, None, 0.0):
            return xp.maximum(z, 0.0)
        y = xp.where(z > self.threshold, z, self.negative_slope * (z - self.threshold))
        return y if self.max_value is None else xp.where(z >= self.max_value, self.max_value, y)

    def backward(self, dy, z, y):
        xp = _backend().xp
        if (self.negative_slope, self.max_value, self.threshold) == (0.0, None, 0.0):
            return _backend().op("relu_backward")(dy, z)
        dz = xp.where(z > self.threshold, dy, self.negative_slope * dy)
        return dz if self.max_value is None else xp.where(z >= self.max_value, 0.0, dz)


@portable_op("relu_backward")
def _relu_backward(dy, z):
    """dL/dz of max(z, 0): dy where z > 0, else 0."""
    return _backend().xp.where(z > 0.0, dy, 0.0)


@REGISTRY.register("leaky_relu")
class LeakyReLU(Activation):
    """y = z for z > 0, negative_slope * z otherwise (Keras default slope 0.2)."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = negative_slope

    def get_config(self):
        return {"negative_slope": self.negative_slope}

    def __call__(self, z):
        return _backend().xp.where(z > 0, z, self.negative_slope * z)

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, self.negative_slope * dy)


@REGISTRY.register("elu")
class ELU(Activation):
    """y = z for z > 0, alpha * (exp(z) - 1) otherwise; dy/dz = y + alpha there."""
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def get_config(self):
        return {"alpha": self.alpha}

    def __call__(self, z):
        xp = _backend().xp
        return xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0.0)))

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, dy, dy * (y + self.alpha))


@REGISTRY.register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + exp(-z)), computed without overflow for large |z|; dy/dz = y (1 - y)."""
    name = "sigmoid"

    def __call__(self, z):
        xp = _backend().xp
        e = xp.exp(-xp.abs(z))  # in (0, 1]: never overflows
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def backward(self, dy, z, y):
        return dy * y * (1.0 - y)


@REGISTRY.register("tanh")
class Tanh(Activation):
    name = "tanh"

    def __call__(self, z):
        return _backend().xp.tanh(z)

    def backward(self, dy, z, y):
        return dy * (1.0 - y * y)


@REGISTRY.register("softsign")
class Softsign(Activation):
    """y = z / (1 + |z|);  dy/dz = 1 / (1 + |z|)^2."""
    name = "softsign"

    def __call__(self, z):
        return z / (1.0 + _backend().xp.abs(z))

    def backward(self, dy, z, y):
        d = 1.0 + _backend().xp.abs(z)
        return dy / (d * d)


@REGISTRY.register("selu")
class SELU(Activation):
    """y = scale * z for z > 0, scale * alpha * (exp(z) - 1) otherwise (Klambauer et al. 2017's
    constants); dy/dz = scale, or y + scale * alpha."""
    name = "selu"
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

    def __call__(self, z):
        xp = _backend().xp
        return self.scale * xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0.0)))

    def backward(self, dy, z, y):
        return _backend().xp.where(z > 0, self.scale * dy, dy * (y + self.scale * self.alpha))


@REGISTRY.register("hard_sigmoid")
class HardSigmoid(Activation):
    """y = clip((z + 3) / 6, 0, 1) (Keras 3's relu6(z + 3) / 6);  dy/dz = 1/6 inside (-3, 3)."""
    name = "hard_sigmoid"

    def __call__(self, z):
        return _backend().xp.clip((z + 3.0) * (1.0 / 6.0), min=0.0, max=1.0)

    def backward(self, dy, z, y):
        return _backend().xp.where((z > -3.0) & (z < 3.0), dy * (1.0 / 6.0), 0.0)


@REGISTRY.register("silu", "swish")
class SiLU(Activation):
    """y = z * sigmoid(z) (swish);  dy/dz = s + z s (1 - s), s = sigmoid(z)."""
    name = "silu"

    def __call__(self, z):
        return z * sigmoid(z)

    def backward(self, dy, z, y):
        s = sigmoid(z)
        return dy * (s + z * s * (1.0 - s))


@REGISTRY.register("gelu")
class GELU(Activation):
    """y = z * Phi(z), Phi the standard normal CDF: 0.5 * (1 + erf(z / sqrt(2))); dy/dz =
    Phi(z) + z * phi(z). With `approximate`: Phi(z) ~ 0.5 * (1 + tanh(sqrt(2/pi) * (z + 0.044715 z^3)))
    (Hendrycks & Gimpel 2016), differentiated as written."""
    name = "gelu"

    def __init__(self, approximate=False):
        self.approximate = approximate

    def get_config(self):
        return {"approximate": self.approximate}

    def __call__(self, z):
        if self.approximate:
            return 0.5 * z * (1.0 + self._tanh_term(z))
        return 0.5 * z * (1.0 + _backend().op("erf")(z * math.sqrt(0.5)))

    def _tanh_term(self, z):
        return _backend().xp.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z * z * z))

    def backward(self, dy, z, y):
        xp = _backend().xp
        if self.approximate:
            t = self._tanh_term(z)
            dt = (1.0 - t * t) * math.sqrt(2.0 / math.pi) * (1.0 + 3.0 * 0.044715 * z * z)
            return dy * (0.5 * (1.0 + t) + 0.5 * z * dt)
        cdf = 0.5 * (1.0 + _backend().op("erf")(z * math.sqrt(0.5)))
        pdf = xp.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))
        return dy * (cdf + z * pdf)


@REGISTRY.register("softplus")
class Softplus(Activation):
    """y = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)); dy/dz = sigmoid(z)."""
    name = "softplus"

    def __call__(self, z):
        xp = _backend().xp
        return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, dy, z, y):
        return dy * sigmoid(z)


@REGISTRY.register("softmax")
class Softmax(Activation):
    """y_i = exp(z_i - max z) / sum_j exp(z_j - max z) along `axis`.

    Its Jacobian is diag(y) - y y^T, so the vector-Jacobian product is y * (dy - sum(dy * y)).
    """
    name = "softmax"

    def __init__(self, axis=-1):
        self.axis = axis

    def get_config(self):
        return {"axis": self.axis}

    def __call__(self, z):
        xp = _backend().xp
        e = xp.exp(z - xp.max(z, axis=self.axis, keepdims=True))
        return e / xp.sum(e, axis=self.axis, keepdims=True)

    def backward(self, dy, z, y):
        xp = _backend().xp
        return y * (dy - xp.sum(dy * y, axis=self.axis, keepdims=True))


@REGISTRY.register("log_softmax")
class LogSoftmax(Activation):
    """y = log(softmax(z)) along `axis`, stable: z - max - log(sum(exp(z - max)));
    dy/dz: dz = dy - softmax(z) * sum(dy)."""
    name = "log_softmax"

    def __init__(self, axis=-1):
        self.axis = axis

    def get_config(self):
        return {"axis": self.axis}

    def __call__(self, z):
        xp = _backend().xp
        shifted = z - xp.max(z, axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=self.axis, keepdims=True))

    def backward(self, dy, z, y):
        xp = _backend().xp
        return dy - xp.exp(y) * xp.sum(dy, axis=self.axis, keepdims=True)


# erf(x) as Cephes computes it (ndtr.c): a rational function of x^2 for |x| <= 1, and
# 1 - erfc(|x|) with erfc(a) = exp(-a^2) * P(a) / Q(a) above (R/S from a = 8): about 1e-16 in
# float64, so the derivative of the exact GELU matches its finite differences there.
_ERF_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
          7.00332514112805075473E3, 5.55923013010394962768E4)
_ERF_U = (3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
          2.26290000613890934246E4, 4.92673942608635921086E4)
_ERFC_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
           4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
           9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
_ERFC_Q = (1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
           9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
           1.65666309194161350182E3, 5.57535340817727675546E2)
_ERFC_R = (5.64189583547755073984E-1, 1.27536670759978104416E0, 5.01905042251180477414E0,
           6.16021097993053585195E0, 7.40974269950448939160E0, 2.97886665372100240670E0)
_ERFC_S = (2.26052863220117276590E0, 9.39603524938001434673E0, 1.20489539808096656605E1,
           1.70814450747565897222E1, 9.60896809063285878198E0, 3.36907645100081516050E0)


def _polynomial(x, coefficients, leading_one=False):
    result = x * 0.0 + (1.0 if leading_one else 0.0)
    for c in coefficients:
        result = result * x + c
    return result


@portable_op("erf")
def _erf(x):
    """The error function, element-wise (the Array API standard has none). Fast path "erf"."""
    xp = _backend().xp
    a = xp.abs(x)
    small = x * _polynomial(x * x, _ERF_T) / _polynomial(x * x, _ERF_U, True)
    middle = _polynomial(a, _ERFC_P) / _polynomial(a, _ERFC_Q, True)
    large = _polynomial(a, _ERFC_R) / _polynomial(a, _ERFC_S, True)
    erfc = xp.exp(-a * a) * xp.where(a < 8.0, middle, large)
    return xp.where(a <= 1.0, small, xp.where(x < 0, erfc - 1.0, 1.0 - erfc))


linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
sigmoid = Sigmoid()
tanh = Tanh()
softplus = Softplus()
softmax = Softmax()
softsign = Softsign()
selu = SELU()
hard_sigmoid = HardSigmoid()
silu = swish = SiLU()
gelu = GELU()
log_softmax = LogSoftmax()


def get(identifier):
    """An Activation from a name ("relu"), a serialized config, an Activation, or None (linear)."""
    if identifier is None:
        return Linear()
    if callable(identifier) and not isinstance(identifier, Activation):
        raise InvalidTypeError(
            f"Invalid value for `activation`. Expected a name or a portanet.activations.Activation "
            f"(which knows its derivative; subclass Activation and define __call__ and backward for "
            f"a custom one). Received: activation={identifier!r}")
    return REGISTRY.get(identifier)


serialize, deserialize = REGISTRY.serialize, REGISTRY.deserialize

__all__ = ["Activation", "get", "serialize", "deserialize", "log_softmax", *REGISTRY.names]
