"""Convolutions: Conv2D (dilated, grouped), Conv1D and Conv2DTranspose, computed on NCHW arrays
by portanet.ops (im2col and one GEMM; the transpose is its adjoint)."""
from .. import ops
from ..backend import get as _backend
from ..errors import check_positive_int, invalid
from .base import REGISTRY, ActivationArg, InitializerArg, RegularizerArg, WeightedLayer
from .image import (IntPair, Layout, PaddingArg, padding_arg, padding_config, positive_pair, positive_single,
                    spatial_output_shape)


@REGISTRY.register()
class Conv2D(WeightedLayer):
    """2-D convolution (cross-correlation): y = act(conv(x, kernel) + bias).

    x (batch, in, H, W) -> y (batch, filters, Ho, Wo) (channels first; (batch, H, W, in) ->
    (batch, Ho, Wo, filters) with data_format="channels_last"); kernel (filters, in/groups, kh, kw),
    bias (filters,), whatever the data format. Fans of the kernel: fan_in = in/groups*kh*kw,
    fan_out = filters*kh*kw.

    Computation (portanet.ops): the kh*kw strided slices of the zero-padded input are stacked
    into cols (in*kh*kw, Ho*Wo*batch) and multiplied by the kernel in one GEMM. Backward:
    dkernel = dz2 @ cols^T, dbias = sums of dz2, dx = col2im(kernel2^T @ dz2) (shifted sums).
    A dilated kernel is the kernel with dilation-1 zeros between its elements (its gradient: the
    dilated kernel's gradient at those elements); groups run one such convolution each.
    Where nothing reads dL/dx (a model's first layer), `backward` returns dx = None and skips the
    col2im GEMM and sums, about half the backward pass.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: an int or a pair (height, width): the window's size.
        strides: an int or a pair (height, width). Default 1.
        padding: "valid" (none, the default), "same" (TensorFlow/Keras rule: Ho = ceil(H / sh),
            the total padding max((Ho-1)*sh + span - H, 0) split with the extra row at the
            bottom/right), an int p (p on every side, as PyTorch), a pair (ph, pw), or
            ((top, bottom), (left, right)).
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format() ("channels_first" unless set).
        dilation_rate: an int or a pair: the window's elements are that many pixels apart.
            Default 1.
        groups: the channels split into this many groups convolved separately (in and filters
            divisible by it); groups=in is a depthwise convolution. Default 1.
        activation: as Dense's. Default None (linear).
        use_bias: whether the layer has a bias. Default True.
        kernel_initializer: initializer of the kernel. Default "glorot_uniform".
        bias_initializer: initializer of the bias. Default "zeros".
        kernel_regularizer, bias_regularizer: as Dense's. Default None.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        model = pn.Sequential([pn.Input((1, 28, 28)), Conv2D(32, 3, activation="relu"),
                               pn.layers.MaxPooling2D(), pn.layers.Flatten(), pn.layers.Dense(10)])
        Conv2D(8, 3, data_format="channels_last")  # Keras' layout: (batch, H, W, channels)
    """
    rank = 2

    def __init__(self, filters: int, kernel_size: IntPair, strides: IntPair = 1, padding: PaddingArg = "valid",
                 data_format: str | None = None, dilation_rate: IntPair = 1, groups: int = 1,
                 activation: ActivationArg = None, use_bias: bool = True,
                 kernel_initializer: InitializerArg = "glorot_uniform", bias_initializer: InitializerArg = "zeros",
                 kernel_regularizer: RegularizerArg = None, bias_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        window = positive_pair if self.rank == 2 else positive_single
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = window("kernel_size", kernel_size)
        self.strides = window("strides", strides)
        self.dilation_rate = window("dilation_rate", dilation_rate)
        self.groups = check_positive_int("groups", groups)
        if self.filters % self.groups:
            raise invalid("groups", f"a divisor of filters={self.filters}", groups)
        self.padding = self._padding(padding)
        self.layout = Layout(data_format, self.rank)

    def _padding(self, padding):
        return padding_arg(padding)

    def compute_output_shape(self, input_shape):
        chw = self.layout.check(self, input_shape)
        if chw[0] % self.groups:
            raise invalid("groups", f"a divisor of the {chw[0]} input channels of layer '{self.name}'", self.groups)
        _, out = spatial_output_shape(self, chw, self.kernel_size, self.strides, "kernel_size", self.dilation_rate)
        return self.layout.shape_from_nchw((self.filters, *out))

    def param_specs(self):
        channels = self.layout.shape_to_nchw(self.input_shape)[0] // self.groups
        window = self.kernel_size if self.rank == 2 else self.kernel_size[1:]
        return self.weight_specs((self.filters, channels, *window), (self.filters,))

    def _kernel(self, kernel):
        """The (filters, in/groups, kh, kw) kernel the convolution uses: dilated, and 2-D."""
        kernel = _backend().xp.reshape(kernel, (*kernel.shape[:2], *self.kernel_size))
        for axis, rate in ((-2, self.dilation_rate[0]), (-1, self.dilation_rate[1])):
            kernel = ops.dilate(kernel, rate, axis)
        return kernel

    def linear_forward(self, params, x):
        xp = _backend().xp
        x = self.layout.to_nchw(xp, x)
        kernel = self._kernel(params["kernel"])
        pads = ops.resolve_padding(self.padding, tuple(x.shape[2:]), tuple(kernel.shape[2:]), self.strides)
        bias = params["bias"] if self.use_bias else None
        outputs, caches = [], []
        for xg, kg, bg in zip(_split(x, self.groups, 1), _split(kernel, self.groups, 0),
                              _split(bias, self.groups, 0) if bias is not None else [None] * self.groups):
            z, cache = ops.conv2d_forward(xg, kg, bg, self.strides, pads)
            outputs.append(z)
            caches.append(cache)
        z = outputs[0] if self.groups == 1 else xp.concat(outputs, axis=1)
        return self.layout.from_nchw(xp, z), (caches, kernel, pads)

    def linear_backward(self, params, cache, dz):
        xp = _backend().xp
        caches, kernel, pads = cache
        parts = [ops.conv2d_backward(kg, cg, dzg, self.strides, pads, need_dx=self.needs_input_grad,
                                     need_bias=self.use_bias)
                 for kg, cg, dzg in zip(_split(kernel, self.groups, 0), caches,
                                        _split(self.layout.to_nchw(xp, dz), self.groups, 1))]
        dxs, dkernels, dbiases = zip(*parts)
        dx, dkernel, dbias = _joined(xp, dxs, 1), _joined(xp, dkernels, 0), _joined(xp, dbiases, 0)
        dh, dw = self.dilation_rate
        grads = {"kernel": xp.reshape(dkernel[:, :, ::dh, ::dw], params["kernel"].shape)}
        if self.use_bias:
            grads["bias"] = dbias
        return (None if dx is None else self.layout.from_nchw(xp, dx)), grads

    def get_config(self):
        def window(value):
            return list(value) if self.rank == 2 else value[1]
        return {**super().get_config(), "filters": self.filters, "kernel_size": window(self.kernel_size),
                "strides": window(self.strides), "padding": padding_config(self.padding),
                "data_format": self.layout.data_format, "dilation_rate": window(self.dilation_rate),
                "groups": self.groups}


def _split(a, groups, axis):
    """`a` cut into `groups` equal parts along `axis` (0 or 1)."""
    if groups == 1:
        return [a]
    size = a.shape[axis] // groups
    return [a[g * size:(g + 1) * size, ...] if axis == 0 else a[:, g * size:(g + 1) * size, ...] for g in range(groups)]


def _joined(xp, parts, axis):
    """The groups' parts joined along `axis` (None where a part was not computed)."""
    if parts[0] is None:
        return None
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


@REGISTRY.register()
class Conv1D(Conv2D):
    """1-D convolution over sequences: y = act(conv(x, kernel) + bias).

    x (batch, in, length) -> y (batch, filters, new length) (channels first; (batch, length, in)
    with data_format="channels_last", Keras' default for sequences). kernel (filters, in/groups, k).
    Computed as a Conv2D over images of height 1.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: a positive int (or a 1-tuple). strides, dilation_rate: the same. Default 1.
        padding: "valid" (the default), "same", "causal" (dilation_rate*(k-1) zeros before the
            sequence, none after: an output never sees a later input) or a non-negative int.
        data_format, groups, activation, use_bias, the initializers and regularizers, **kwargs:
            as Conv2D's, with the same defaults.
    """
    rank = 1

    def _padding(self, padding):
        if isinstance(padding, str) and padding.lower() == "causal":
            return (0, 0), (self.dilation_rate[1] * (self.kernel_size[1] - 1), 0)
        if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            return (0, 0), (padding, padding)
        if isinstance(padding, str) and padding.lower() in ("valid", "same"):
            return padding.lower()
        raise invalid("padding", "'valid', 'same', 'causal' or a non-negative int", padding)

    def get_config(self):
        config = super().get_config()
        if not isinstance(self.padding, str):
            config["padding"] = self.padding[1][1] if self.padding[1][0] == self.padding[1][1] else "causal"
        return config


@REGISTRY.register()
class Conv2DTranspose(WeightedLayer):
    """Transposed 2-D convolution (the adjoint of Conv2D's input gradient; "deconvolution").

    x (batch, in, H, W) -> y (batch, filters, Ho, Wo) with Ho = (H - 1) * sh + kh for
    padding="valid" and Ho = H * sh for "same" (channels last with data_format="channels_last").
    kernel (in, filters, kh, kw) (PyTorch's ConvTranspose2d layout), bias (filters,).

    Forward: each input pixel scatters kernel-weighted copies into its output window:
    y = col2im(kernel2^T @ x2), x2 = x as (in, H*W*batch), kernel2 = kernel as (in, filters*kh*kw).
    Backward: with dcols = im2col(dy), dx2 = kernel2 @ dcols, dkernel2 = x2 @ dcols^T,
    dbias = sums of dy.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: an int or a pair (height, width).
        strides: an int or a pair (height, width). Default 1.
        padding: "valid" (the default) or "same".
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as Dense's, with the same defaults.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, filters: int, kernel_size: IntPair, strides: IntPair = 1, padding: str = "valid",
                 data_format: str | None = None, activation: ActivationArg = None, use_bias: bool = True,
                 kernel_initializer: InitializerArg = "glorot_uniform", bias_initializer: InitializerArg = "zeros",
                 kernel_regularizer: RegularizerArg = None, bias_regularizer: RegularizerArg = None, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = positive_pair("kernel_size", kernel_size)
        self.strides = positive_pair("strides", strides)
        self.padding = padding_arg(padding, allow_explicit=False)
        self.layout = Layout(data_format, 2)

    def _geometry(self, chw):
        """(output (H, W), pads of the convolution this is the adjoint of)."""
        spatial = chw[1:]
        if self.padding == "same":
            out = tuple(n * s for n, s in zip(spatial, self.strides))
        else:
            out = tuple((n - 1) * s + k for n, s, k in zip(spatial, self.strides, self.kernel_size))
        return out, ops.resolve_padding(self.padding, out, self.kernel_size, self.strides)

    def compute_output_shape(self, input_shape):
        out, _ = self._geometry(self.layout.check(self, input_shape))
        return self.layout.shape_from_nchw((self.filters, *out))

    def param_specs(self):
        channels = self.layout.shape_to_nchw(self.input_shape)[0]
        return self.weight_specs((channels, self.filters, *self.kernel_size), (self.filters,))

    def linear_forward(self, params, x):
        xp = _backend().xp
        x = self.layout.to_nchw(xp, x)
        N, C, H, W = x.shape
        (Ho, Wo), pads = self._geometry(x.shape[1:])
        x2 = xp.reshape(xp.permute_dims(x, (1, 2, 3, 0)), (C, H * W * N))
        kernel2 = xp.reshape(params["kernel"], (C, -1))                  # (in, filters*kh*kw)
        y = ops.col2im(xp.matmul(xp.matrix_transpose(kernel2), x2), (N, self.filters, Ho, Wo),
                       self.kernel_size, self.strides, pads)
        if self.use_bias:
            y = y + xp.reshape(params["bias"], (1, self.filters, 1, 1))
        return self.layout.from_nchw(xp, y), (x2, x.shape, pads)

    def linear_backward(self, params, cache, dz):
        xp = _backend().xp
        x2, (N, C, H, W), pads = cache
        dz = self.layout.to_nchw(xp, dz)
        dcols = ops.im2col(dz, self.kernel_size, self.strides, pads)     # (filters*kh*kw, H*W*N)
        kernel2 = xp.reshape(params["kernel"], (C, -1))
        grads = {"kernel": xp.reshape(xp.matmul(x2, xp.matrix_transpose(dcols)), params["kernel"].shape)}
        if self.use_bias:
            grads["bias"] = xp.sum(dz, axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None, grads
        dx = xp.permute_dims(xp.reshape(xp.matmul(kernel2, dcols), (C, H, W, N)), (3, 0, 1, 2))
        return self.layout.from_nchw(xp, dx), grads

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.layout.data_format}


Convolution2D, Convolution1D, Convolution2DTranspose = Conv2D, Conv1D, Conv2DTranspose

__all__ = ["Conv2D", "Convolution2D", "Conv1D", "Convolution1D", "Conv2DTranspose", "Convolution2DTranspose"]
