"""Image reshaping: ZeroPadding2D, Cropping2D and UpSampling2D (each one's backward is the other
direction's forward: a crop, a pad, a sum over blocks)."""
from .. import ops
from ..backend import get as _backend
from ..errors import invalid
from .base import REGISTRY, Layer
from .image import Layout, padding_arg, positive_pair


def _amounts(name, value):
    """An int, a pair (rows, cols) or ((top, bottom), (left, right)) -> the last form."""
    amounts = padding_arg(value)
    if isinstance(amounts, str):
        raise invalid(name, "a non-negative int, a pair or a pair of pairs", value)
    return amounts


class _ImageReshape(Layer):
    """An image layer whose NCHW computation is `reshape_nchw` / `unreshape_nchw`."""

    def compute_output_shape(self, input_shape):
        return self.layout.shape_from_nchw(self.nchw_shape(self.layout.check(self, input_shape)))

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        return self.layout.from_nchw(xp, self.reshape_nchw(xp, self.layout.to_nchw(xp, x))), None

    def backward(self, params, cache, dy):
        if not self.needs_input_grad:
            return None, {}
        xp = _backend().xp
        return self.layout.from_nchw(xp, self.unreshape_nchw(xp, self.layout.to_nchw(xp, dy))), {}

    def get_config(self):
        return {**super().get_config(), "data_format": self.layout.data_format}


@REGISTRY.register()
class ZeroPadding2D(_ImageReshape):
    """Zeros around images: (batch, C, H, W) -> (batch, C, H + top + bottom, W + left + right).

    dx is dy cropped.

    Args:
        padding: non-negative amounts: an int p (every side), a pair (rows, cols) (rows at the
            top and bottom, cols at the left and right) or ((top, bottom), (left, right)).
            Default 1.
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, padding=1, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.padding, self.layout = _amounts("padding", padding), Layout(data_format, 2)

    def nchw_shape(self, chw):
        (top, bottom), (left, right) = self.padding
        return chw[0], chw[1] + top + bottom, chw[2] + left + right

    def reshape_nchw(self, xp, x):
        return ops.pad2d(x, self.padding)

    def unreshape_nchw(self, xp, dy):
        return ops.crop2d(dy, self.padding)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


@REGISTRY.register()
class Cropping2D(_ImageReshape):
    """Rows and columns cut from the edges of images.

    (batch, C, H, W) -> (batch, C, H - top - bottom, W - left - right). dx is dy zero-padded back.

    Args:
        cropping: amounts in ZeroPadding2D's forms (an int, a pair or a pair of pairs); at least
            one row and column must remain. Default ((0, 0), (0, 0)).
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.cropping, self.layout = _amounts("cropping", cropping), Layout(data_format, 2)

    def nchw_shape(self, chw):
        (top, bottom), (left, right) = self.cropping
        shape = (chw[0], chw[1] - top - bottom, chw[2] - left - right)
        if min(shape) < 1:
            raise invalid("cropping", f"less than the input's size {tuple(chw[1:])} for layer '{self.name}'",
                          self.cropping)
        return shape

    def reshape_nchw(self, xp, x):
        return ops.crop2d(x, self.cropping)

    def unreshape_nchw(self, xp, dy):
        return ops.pad2d(dy, self.cropping)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


@REGISTRY.register()
class UpSampling2D(_ImageReshape):
    """Nearest-neighbour upsampling: each pixel repeated into a size = (rows, cols) block.

    (batch, C, H, W) -> (batch, C, H * rows, W * cols). dx sums dy over each block.

    Args:
        size: an int or a pair (rows, cols) of positive ints. Default (2, 2).
        data_format: "channels_first" or "channels_last". Default None:
            pn.config.image_data_format().
        interpolation: only "nearest" (the default).
        **kwargs: `Layer`'s arguments (name, trainable, input_shape, input_dim).
    """

    def __init__(self, size=(2, 2), data_format: str | None = None, interpolation: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation != "nearest":
            raise invalid("interpolation", "'nearest' (portanet has no bilinear upsampling yet)", interpolation)
        self.size, self.layout = positive_pair("size", size), Layout(data_format, 2)

    def nchw_shape(self, chw):
        return chw[0], chw[1] * self.size[0], chw[2] * self.size[1]

    def reshape_nchw(self, xp, x):
        (N, C, H, W), (sh, sw) = x.shape, self.size
        blocks = xp.broadcast_to(xp.reshape(x, (N, C, H, 1, W, 1)), (N, C, H, sh, W, sw))
        return xp.reshape(blocks, (N, C, H * sh, W * sw))

    def unreshape_nchw(self, xp, dy):
        (N, C, Hs, Ws), (sh, sw) = dy.shape, self.size
        return xp.sum(xp.reshape(dy, (N, C, Hs // sh, sh, Ws // sw, sw)), axis=(3, 5))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": "nearest"}
