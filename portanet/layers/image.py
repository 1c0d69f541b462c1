"""What the image layers share: their window arguments and their layout.

Every image layer computes on (batch, channels, height, width) arrays (NCHW), the layout of
portanet.ops. `Layout` converts from and to the layer's own: channels first or last
(`data_format`, default `pn.config.image_data_format()`), over 2 spatial axes, or over 1 (a
sequence (batch, channels, length) is computed as an image of height 1).
"""
from .. import config, ops
from ..errors import invalid

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


def positive_single(name, value):
    """A positive int n (or the tuple (n,)) -> (1, n): a 1-D window as a 2-D one of height 1."""
    single = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not _is_int(single) or single <= 0:
        raise invalid(name, "a positive int", value)
    return 1, single


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


def spatial_output_shape(layer, chw, kernel, strides, kernel_arg, dilation=(1, 1)):
    """(pads, (Ho, Wo)) of a window over `chw` = (C, H, W); checks that the (dilated) window fits
    in the padded input."""
    spatial = tuple(chw[1:])
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    pads = ops.resolve_padding(layer.padding, spatial, span, strides)
    padded = tuple(n + p[0] + p[1] for n, p in zip(spatial, pads))
    if any(k > n for k, n in zip(span, padded)):
        raise invalid(kernel_arg, f"a window no larger than the padded input {padded} of layer "
                      f"'{layer.name}' (input shape {tuple(layer.layout.shape_from_nchw(chw))})", kernel)
    return pads, tuple(ops.output_size(n, k, s, p) for n, k, s, p in zip(spatial, span, strides, pads))


class Layout:
    """An image layer's layout: `data_format` (channels first or last) over `rank` (1 or 2)
    spatial axes, and the conversions to the NCHW arrays the layer computes on."""

    def __init__(self, data_format, rank):
        self.data_format, self.rank = config.data_format(data_format), rank
        self.channels_last = self.data_format == "channels_last"

    def describe(self):
        if self.rank == 2:
            return ("NHWC input (batch, height, width, channels)" if self.channels_last
                    else "NCHW input (batch, channels, height, width)")
        return "NLC input (batch, length, channels)" if self.channels_last else "NCL input (batch, channels, length)"

    def check(self, layer, input_shape):
        """`input_shape` (no batch axis) as (C, H, W); an error naming the layout otherwise."""
        if len(input_shape) != self.rank + 1:
            raise invalid("input_shape", f"{self.describe()} for layer '{layer.name}' (a shape of "
                          f"{self.rank + 1} axes without the batch)", tuple(input_shape))
        return self.shape_to_nchw(input_shape)

    def shape_to_nchw(self, shape):
        shape = tuple(shape)
        c, spatial = (shape[-1], shape[:-1]) if self.channels_last else (shape[0], shape[1:])
        return (c, *((1,) * (2 - self.rank)), *spatial)

    def shape_from_nchw(self, shape):
        c, spatial = shape[0], tuple(shape[1:])[2 - self.rank:]
        return (*spatial, c) if self.channels_last else (c, *spatial)

    def to_nchw(self, xp, x):
        """x in this layout -> (N, C, H, W)."""
        if self.channels_last:
            x = xp.permute_dims(x, (0, x.ndim - 1, *range(1, x.ndim - 1)))
        return x if self.rank == 2 else xp.reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))

    def from_nchw(self, xp, y):
        """(N, C, H, W) -> this layout."""
        if self.rank == 1:
            y = xp.reshape(y, (y.shape[0], y.shape[1], y.shape[3]))
        return xp.permute_dims(y, (0, *range(2, y.ndim), 1)) if self.channels_last else y
