"""Pooling: max and average over windows of images and sequences (MaxPooling2D, AveragePooling2D,
MaxPooling1D, AveragePooling1D) and over whole images and sequences (the global poolings)."""
from .. import ops
from ..backend import get as _backend
from .base import REGISTRY, Layer
from .image import IntPair, Layout, padding_arg, positive_pair, positive_single, spatial_output_shape


class _Pool(Layer):
    """A window pooling: `pool` and `unpool` are the portanet.ops forward and backward of its
    window reduction, pool(x, pool_size, strides, pads) -> (y, cache) and
    unpool(cache, dy, pool_size, strides, pads) -> dx, on NCHW arrays."""
    rank = 2

    def __init__(self, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        window = positive_pair if self.rank == 2 else positive_single
        self.pool_size = window("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else window("strides", strides)
        self.padding = padding_arg(padding, allow_explicit=False)
        self.layout = Layout(data_format, self.rank)

    def compute_output_shape(self, input_shape):
        chw = self.layout.check(self, input_shape)
        _, out = spatial_output_shape(self, chw, self.pool_size, self.strides, "pool_size")
        return self.layout.shape_from_nchw((chw[0], *out))

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        x = self.layout.to_nchw(xp, x)
        pads = ops.resolve_padding(self.padding, tuple(x.shape[2:]), self.pool_size, self.strides)
        y, cache = self.pool(x, self.pool_size, self.strides, pads)
        return self.layout.from_nchw(xp, y), (cache, pads)

    def backward(self, params, cache, dy):
        if not self.needs_input_grad:
            return None, {}
        xp = _backend().xp
        cache, pads = cache
        dx = self.unpool(cache, self.layout.to_nchw(xp, dy), self.pool_size, self.strides, pads)
        return self.layout.from_nchw(xp, dx), {}

    def get_config(self):
        def window(value):
            return list(value) if self.rank == 2 else value[1]
        return {**super().get_config(), "pool_size": window(self.pool_size), "strides": window(self.strides),
                "padding": self.padding, "data_format": self.layout.data_format}


@REGISTRY.register()
class MaxPooling2D(_Pool):
    """Max over pool_size windows of images.

    (batch, C, H, W) -> (batch, C, Ho, Wo) (channels last: (batch, H, W, C) -> (batch, Ho, Wo, C)).

    Backward: each output's gradient goes to the first maximum of its window (row-major), as in
    PyTorch, so tied maxima never share or duplicate it. dx is None where nothing reads it.

    Args:
        pool_size: an int or a pair (height, width). Default 2.
        strides: an int or a pair. Default None: `pool_size`. Smaller strides give overlapping
            windows.
        padding: "valid" (the default) or "same" (Keras rule, see Conv2D); padded elements count
            as -inf.
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).

    Example:
        MaxPooling2D()              # 2x2 windows, stride 2: (batch, C, 28, 28) -> (batch, C, 14, 14)
    """

    pool = staticmethod(ops.maxpool2d_forward)
    unpool = staticmethod(ops.maxpool2d_backward)


@REGISTRY.register()
class AveragePooling2D(_Pool):
    """Mean over pool_size windows of images.

    With padding="same" each window is divided by its number of real (unpadded) elements, as
    Keras/TensorFlow (PyTorch's count_include_pad=False).

    Args:
        pool_size, strides, padding, data_format, **kwargs: as MaxPooling2D's (pool_size 2,
            strides None: `pool_size`, padding "valid", data_format None).
    """

    pool = staticmethod(ops.avgpool2d_forward)
    unpool = staticmethod(ops.avgpool2d_backward)


@REGISTRY.register()
class MaxPooling1D(MaxPooling2D):
    """Max over windows of sequences: (batch, C, L) -> (batch, C, Lo) (channels last: (batch, L, C)).

    Computed as MaxPooling2D on images of height 1.

    Args:
        pool_size: a positive int. Default 2.
        strides: a positive int. Default None: `pool_size`.
        padding, data_format, **kwargs: as MaxPooling2D's.
    """
    rank = 1


@REGISTRY.register()
class AveragePooling1D(AveragePooling2D):
    """Mean over windows of sequences: (batch, C, L) -> (batch, C, Lo).

    Args:
        pool_size, strides, padding, data_format, **kwargs: as MaxPooling1D's.
    """
    rank = 1


class _GlobalPool(Layer):
    """A reduction over every spatial position: (batch, C, *spatial) -> (batch, C), or with
    `keepdims` (batch, C, 1, ...) (channels last: the channel axis last)."""
    rank = 2

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.layout, self.keepdims = Layout(data_format, self.rank), bool(keepdims)

    def compute_output_shape(self, input_shape):
        channels = self.layout.check(self, input_shape)[0]
        return self.layout.shape_from_nchw((channels, 1, 1)) if self.keepdims else (channels,)

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        x = self.layout.to_nchw(xp, x)
        flat = xp.reshape(x, (x.shape[0], x.shape[1], -1))            # (N, C, positions)
        y, cache = self.reduce(xp, flat)
        y = self.layout.from_nchw(xp, xp.reshape(y, (*y.shape, 1, 1))) if self.keepdims else y
        return y, (cache, x.shape)

    def backward(self, params, cache, dy):
        if not self.needs_input_grad:
            return None, {}
        xp = _backend().xp
        cache, shape = cache
        dy = xp.reshape(dy, (shape[0], shape[1], 1))                 # any keepdims axes dropped
        dx = xp.reshape(self.spread(xp, cache, dy), shape)
        return self.layout.from_nchw(xp, dx), {}

    def get_config(self):
        return {**super().get_config(), "data_format": self.layout.data_format, "keepdims": self.keepdims}


@REGISTRY.register()
class GlobalAveragePooling2D(_GlobalPool):
    """The mean of each channel over the image: (batch, C, H, W) -> (batch, C).

    y = sum(x) / P over the P positions; dx = dy / P at every position.

    Args:
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        keepdims: whether to keep the spatial axes, of size 1. Default False.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def reduce(self, xp, flat):
        return xp.mean(flat, axis=-1), flat.shape[-1]

    def spread(self, xp, positions, dy):
        return xp.broadcast_to(dy * (1.0 / positions), (dy.shape[0], dy.shape[1], positions))


@REGISTRY.register()
class GlobalMaxPooling2D(_GlobalPool):
    """The maximum of each channel over the image: (batch, C, H, W) -> (batch, C).

    dy goes to its first maximum (row-major).

    Args:
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        keepdims: whether to keep the spatial axes, of size 1. Default False.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def reduce(self, xp, flat):
        first = xp.argmax(flat, axis=-1)                               # the first maximum
        hit = xp.reshape(first, (*first.shape, 1)) == xp.arange(flat.shape[-1], dtype=first.dtype)
        return xp.max(flat, axis=-1), hit

    def spread(self, xp, hit, dy):
        return xp.where(hit, dy, 0.0)


@REGISTRY.register()
class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """The mean of each channel over the sequence: (batch, C, L) -> (batch, C).

    Args:
        data_format, keepdims, **kwargs: as GlobalAveragePooling2D's.
    """
    rank = 1


@REGISTRY.register()
class GlobalMaxPooling1D(GlobalMaxPooling2D):
    """The maximum of each channel over the sequence: (batch, C, L) -> (batch, C).

    Args:
        data_format, keepdims, **kwargs: as GlobalMaxPooling2D's.
    """
    rank = 1


MaxPool2D, AvgPool2D, MaxPool1D, AvgPool1D = MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D
GlobalAvgPool1D, GlobalMaxPool1D = GlobalAveragePooling1D, GlobalMaxPooling1D

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "MaxPooling1D", "MaxPool1D",
           "AveragePooling1D", "AvgPool1D", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D",
           "GlobalMaxPool2D", "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPooling1D", "GlobalMaxPool1D"]
