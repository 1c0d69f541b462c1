"""MaxPooling2D (MaxPool2D) and AveragePooling2D (AvgPool2D) over NCHW images."""
from .. import ops
from ..errors import invalid
from .base import REGISTRY, Layer
from .conv import IntPair, padding_arg, positive_pair, spatial_output_shape


class _Pool2D(Layer):
    """A pooling layer: `pool` and `unpool` are the portanet.ops forward and backward of its window
    reduction, pool(x, pool_size, strides, pads) -> (y, cache) and
    unpool(cache, dy, pool_size, strides, pads) -> dx."""

    def __init__(self, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = positive_pair("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else positive_pair("strides", strides)
        self.padding = padding_arg(padding, allow_explicit=False)

    def compute_output_shape(self, input_shape):
        _, out = spatial_output_shape(self, input_shape, self.pool_size, self.strides, "pool_size")
        return (input_shape[0], *out)

    def _pads(self, x):
        if x.ndim != 4:
            raise invalid("x", f"a 4-D array (batch, channels, height, width) for layer '{self.name}'",
                          f"an array of shape {tuple(x.shape)}")
        return ops.resolve_padding(self.padding, tuple(x.shape[2:]), self.pool_size, self.strides)

    def forward(self, params, x, training=False, key=None):
        pads = self._pads(x)
        y, cache = self.pool(x, self.pool_size, self.strides, pads)
        return y, (cache, pads)

    def backward(self, params, cache, dy):
        if not self.needs_input_grad:
            return None, {}
        cache, pads = cache
        return self.unpool(cache, dy, self.pool_size, self.strides, pads), {}

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


@REGISTRY.register()
class MaxPooling2D(_Pool2D):
    """Max over pool_size windows of NCHW images: (batch, C, H, W) -> (batch, C, Ho, Wo).

    Args:
        pool_size: an int or a pair (height, width); default 2.
        strides: an int or a pair; default `pool_size`. Smaller strides give overlapping windows.
        padding: "valid" or "same" (Keras rule, see Conv2D); padded elements count as -inf.

    Backward: each output's gradient goes to the first maximum of its window (row-major), as in
    PyTorch, so tied maxima never share or duplicate it. dx is None where
    `needs_input_grad` is False (a model's first layer).
    """

    pool = staticmethod(ops.maxpool2d_forward)
    unpool = staticmethod(ops.maxpool2d_backward)


@REGISTRY.register()
class AveragePooling2D(_Pool2D):
    """Mean over pool_size windows of NCHW images: (batch, C, H, W) -> (batch, C, Ho, Wo).

    Arguments as MaxPooling2D. With padding="same" each window is divided by its number of real
    (unpadded) elements, as Keras/TensorFlow (PyTorch's count_include_pad=False).
    """

    pool = staticmethod(ops.avgpool2d_forward)
    unpool = staticmethod(ops.avgpool2d_backward)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D"]
