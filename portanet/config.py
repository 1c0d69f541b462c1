"""Process-wide settings, as Keras' `keras.config`: the float dtype and the image data format.

    pn.config.set_image_data_format("channels_last")   # PORTANET_IMAGE_DATA_FORMAT too

Image layers (convolution, pooling, padding, cropping, upsampling, global pooling) take a
`data_format` argument; left None, they use `image_data_format()` at construction.
"channels_first" (portanet's default, and PyTorch's) is (batch, channels, height, width);
"channels_last" (Keras' default) is (batch, height, width, channels).
"""
import os

from .backend import floatx, set_floatx
from .errors import invalid

DATA_FORMATS = ("channels_first", "channels_last")


def _checked(value, name):
    if value not in DATA_FORMATS:
        raise invalid(name, f"one of {list(DATA_FORMATS)}", value)
    return value


_image_data_format = None  # set_image_data_format's value; None: PORTANET_IMAGE_DATA_FORMAT's


def image_data_format() -> str:
    """"channels_first" (default) or "channels_last": the layout image layers use when given none
    (read from PORTANET_IMAGE_DATA_FORMAT, checked, when first needed)."""
    if _image_data_format is None:
        return _checked(os.environ.get("PORTANET_IMAGE_DATA_FORMAT") or "channels_first", "PORTANET_IMAGE_DATA_FORMAT")
    return _image_data_format


def set_image_data_format(value: str) -> None:
    """Set the layout of the image layers constructed from now on."""
    global _image_data_format
    _image_data_format = _checked(value, "data_format")


def data_format(value):
    """A layer's `data_format` argument: `value` checked, or the process default for None."""
    return image_data_format() if value is None else _checked(value, "data_format")


__all__ = ["floatx", "set_floatx", "image_data_format", "set_image_data_format"]
