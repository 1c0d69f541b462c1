"""Conv2D (NCHW), and the argument checks it shares with the pooling layers."""
from .. import ops
from ..errors import check_positive_int, invalid
from .base import REGISTRY, ActivationArg, InitializerArg, RegularizerArg, WeightedLayer

IntPair = int | tuple[int, int]
PaddingArg = str | int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def positive_pair(name, value):
    """An int n or a pair (a, b) of positive ints -> (a, b); n -> (n, n)."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(_is_int(v) and v > 0 for v in pair):
        raise invalid(name, "a positive int or a pair of positive ints", value)
    return tuple(pair)


def padding_arg(value, allow_explicit=True):
    """"valid" | "same" (any case) | int p | (ph, pw) | ((top, bottom), (left, right)) -> "valid",
    "same" or ((top, bottom), (left, right)) of non-negative ints."""
    names = "'valid' or 'same'"
    expected = (f"{names}, a non-negative int, a pair (ph, pw) or a pair of pairs "
                f"((top, bottom), (left, right))") if allow_explicit else names
    if isinstance(value, str):
        if value.lower() in ("valid", "same"):
            return value.lower()
        raise invalid("padding", expected, value)
    if not allow_explicit:
        raise invalid("padding", expected, value)
    pair = (value, value) if _is_int(value) else value
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        pairs = [(v, v) if _is_int(v) else v for v in pair]
        if all(isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(q) for q in p) for p in pairs):
            if any(q < 0 for p in pairs for q in p):
                raise invalid("padding", "non-negative amounts of padding", value)
            return tuple(tuple(p) for p in pairs)
    raise invalid("padding", expected, value)


def padding_config(padding):
    """JSON form of a `padding_arg` result (a string or [[top, bottom], [left, right]])."""
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def spatial_output_shape(layer, input_shape, kernel, strides, kernel_arg):
    """(pads, (Ho, Wo)) for an NCHW layer on `input_shape` (C, H, W); checks rank and that the
    window fits in the padded input."""
    if len(input_shape) != 3:
        raise invalid("input_shape", f"(channels, height, width) without the batch axis for layer "
                      f"'{layer.name}'", tuple(input_shape))
    spatial = tuple(input_shape[1:])
    pads = ops.resolve_padding(layer.padding, spatial, kernel, strides)
    padded = tuple(n + p[0] + p[1] for n, p in zip(spatial, pads))
    if any(k > n for k, n in zip(kernel, padded)):
        raise invalid(kernel_arg, f"a window no larger than the padded input {padded} of layer "
                      f"'{layer.name}' (input shape {tuple(input_shape)})", kernel)
    return pads, tuple(ops.output_size(n, k, s, p) for n, k, s, p in zip(spatial, kernel, strides, pads))


@REGISTRY.register()
class Conv2D(WeightedLayer):
    """2-D convolution (cross-correlation) over NCHW images: y = act(conv(x, kernel) + bias).

    x (batch, in, H, W) -> y (batch, filters, Ho, Wo); kernel (filters, in, kh, kw), bias (filters,).

    Args:
        filters: number of output channels.
        kernel_size, strides: an int or a pair (height, width).
        padding: "valid" (none), "same" (TensorFlow/Keras rule: Ho = ceil(H / sh), the total
            padding max((Ho-1)*sh + kh - H, 0) split with the extra row at the bottom/right),
            an int p (p on every side, as PyTorch), a pair (ph, pw), or ((top, bottom), (left, right)).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as Dense. Fans of the kernel: fan_in = in*kh*kw, fan_out = filters*kh*kw.

    Computation (portanet.ops): the kh*kw strided slices of the zero-padded input are stacked
    into cols (in*kh*kw, Ho*Wo*batch) and multiplied by the kernel in one GEMM. Backward:
    dkernel = dz2 @ cols^T, dbias = sums of dz2, dx = col2im(kernel2^T @ dz2) (shifted sums).

    Skipping dx: where nothing uses dL/dx (the first layer of a model), set
    `layer.needs_input_grad = False` (models do this for their first layers); `backward` then
    returns dx = None and skips the col2im GEMM and sums, about half the backward pass.
    """

    def __init__(self, filters: int, kernel_size: IntPair, strides: IntPair = 1, padding: PaddingArg = "valid",
                 activation: ActivationArg = None, use_bias: bool = True,
                 kernel_initializer: InitializerArg = "glorot_uniform", bias_initializer: InitializerArg = "zeros",
                 kernel_regularizer: RegularizerArg = None, bias_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = positive_pair("kernel_size", kernel_size)
        self.strides = positive_pair("strides", strides)
        self.padding = padding_arg(padding)

    def compute_output_shape(self, input_shape):
        _, out = spatial_output_shape(self, input_shape, self.kernel_size, self.strides, "kernel_size")
        return (self.filters, *out)

    def param_specs(self):
        return self.weight_specs((self.filters, self.input_shape[0], *self.kernel_size), (self.filters,))

    def _pads(self, x):
        if x.ndim != 4:
            raise invalid("x", f"a 4-D array (batch, channels, height, width) for layer '{self.name}'",
                          f"an array of shape {tuple(x.shape)}")
        return ops.resolve_padding(self.padding, tuple(x.shape[2:]), self.kernel_size, self.strides)

    def linear_forward(self, params, x):
        pads = self._pads(x)
        bias = params["bias"] if self.use_bias else None
        z, cache = ops.conv2d_forward(x, params["kernel"], bias, self.strides, pads)
        return z, (cache, pads)

    def linear_backward(self, params, cache, dz):
        cache, pads = cache
        dx, dkernel, dbias = ops.conv2d_backward(params["kernel"], cache, dz, self.strides, pads,
                                                 need_dx=self.needs_input_grad, need_bias=self.use_bias)
        grads = {"kernel": dkernel}
        if self.use_bias:
            grads["bias"] = dbias
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": padding_config(self.padding)}


Convolution2D = Conv2D

__all__ = ["Conv2D", "Convolution2D"]
