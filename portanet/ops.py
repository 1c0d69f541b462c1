"""Portable array helpers for convolution and pooling, written against the Array API standard.

Everything here uses only standard operations (slicing that names every axis or ends with
`...`, `concat`, `stack`, `reshape`, `permute_dims`, `matmul`, `where`), never writes in place and
never branches on array values, so it runs unchanged on NumPy, JAX (also under `jit`), CuPy and
array-api-strict. Shapes are Python ints, known when a function is traced.

Layout: images are NCHW; a convolution kernel is (out, in, kh, kw). Padding is given as
``((top, bottom), (left, right))``.

    convolution   cols = im2col(x)                     (C*kh*kw, Ho*Wo*N): the kh*kw strided slices
                  z    = kernel.reshape(O, C*kh*kw) @ cols   one GEMM, viewed as (N, O, Ho, Wo)
    its backward  dkernel = dz2 @ cols^T,  dbias = row sums of dz2,  dz2 = dz as (O, Ho*Wo*N)
                  dx = col2im(kernel2^T @ dz2)         the shifted slices summed back in place

Fast paths: the operations below marked "fast path" dispatch through `get().op(name)` to the
current backend's replacement, if it has one, else to the portable implementation here
(`_name`). docs/architecture.md ("Backends and fast paths") lists every such operation and
who replaces it. A forward/backward pair (the convolution, max pooling) is chosen together: the
cache a forward returns holds the backward of the implementation that made it, so the backward
always matches its forward, also when `portanet.backend.portable()` is entered in between.
"""
import math

from .backend import get as _backend, portable_op


# ----- shape arithmetic (Python ints) ------------------------------------------------------------
def same_padding(size, kernel, stride):
    """TensorFlow/Keras "same": out = ceil(size / stride); total = max((out-1)*stride + kernel - size, 0);
    returns (before, after) = (total // 2, total - total // 2)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, spatial, kernel, strides):
    """((top, bottom), (left, right)) for `padding` ("valid", "same", or already a pair of pairs)
    on an input of spatial size (H, W)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(same_padding(n, k, s) for n, k, s in zip(spatial, kernel, strides))
    return tuple(tuple(p) for p in padding)


def output_size(size, kernel, stride, pad):
    """Number of windows of `kernel` at `stride` over `size` padded with pad = (before, after)."""
    return (size + pad[0] + pad[1] - kernel) // stride + 1


# ----- padding, dilation, windows ----------------------------------------------------------------
# `axis` (negative) is where the height axis is; the width axis follows it. NCHW images have
# axis=-2; the convolution works on (C, H, W, N) arrays, axis=-3.
def _fill(xp, shape, value, dtype):
    return xp.zeros(shape, dtype=dtype) if value == 0 else xp.full(shape, value, dtype=dtype)


def _index(ndim, axis, *slices):
    """An index that applies `slices` from axis `axis` on and names every axis before it."""
    return (slice(None),) * (ndim + axis) + tuple(slices) + (...,)


def pad_axis(x, axis, before, after, value=0.0):
    """x padded with `value` along the negative `axis` by concatenation."""
    if before == 0 and after == 0:
        return x
    xp = _backend().xp
    pieces = []
    for n in (before, after):
        shape = list(x.shape)
        shape[axis] = n
        pieces.append(_fill(xp, tuple(shape), value, x.dtype) if n else None)
    return xp.concat([p for p in (pieces[0], x, pieces[1]) if p is not None], axis=axis)


def pad2d(x, pads, value=0.0, axis=-2):
    """x (..., H, W, ...) padded to (..., top+H+bottom, left+W+right, ...) with `value`."""
    (top, bottom), (left, right) = pads
    return pad_axis(pad_axis(x, axis + 1, left, right, value), axis, top, bottom, value)


def crop2d(x, pads, axis=-2):
    """The inverse of `pad2d`: x without its padding."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    H, W = x.shape[axis], x.shape[axis + 1]
    return x[_index(x.ndim, axis, slice(top, H - bottom), slice(left, W - right))]


def dilate(x, stride, axis):
    """Insert stride-1 zeros between the elements of x along negative `axis`:
    length L -> stride*(L-1) + 1, x[.., l, ..] lands at stride*l."""
    if stride == 1:
        return x
    xp = _backend().xp
    axis = axis % x.ndim
    L = x.shape[axis]
    z = xp.stack([x] + [xp.zeros_like(x)] * (stride - 1), axis=axis + 1)
    z = xp.reshape(z, (*x.shape[:axis], L * stride, *x.shape[axis + 1:]))
    return z[_index(z.ndim, axis - z.ndim, slice(0, stride * (L - 1) + 1))]


def windows(x, kernel, strides, out, axis=-2):
    """The kh*kw strided slices of x (.., H, W, ..): element [i][j] is x[.., i::sh, j::sw, ..] cut
    to `out` = (Ho, Wo), so that it holds window element (i, j) of every output position.
    Views where the backend has them; nothing is copied."""
    (kh, kw), (sh, sw), (Ho, Wo) = kernel, strides, out
    return [[x[_index(x.ndim, axis, slice(i, i + sh * (Ho - 1) + 1, sh), slice(j, j + sw * (Wo - 1) + 1, sw))]
             for j in range(kw)] for i in range(kh)]


def shifted_sum(pieces, strides, size, axis=-2):
    """The adjoint of `windows`: pieces[i][j] (.., Ho, Wo, ..) summed into an array (.., H, W, ..)
    of `size` = (H, W), element (oh, ow) of piece (i, j) landing at (i + sh*oh, j + sw*ow).

    Non-overlapping windows (stride == kernel) are interleaved with stack and reshape; otherwise
    each piece is dilated by the stride and padded into place, along W and then along H.
    """
    xp = _backend().xp
    kh, kw = len(pieces), len(pieces[0])
    sh, sw = strides
    H, W = size
    first = pieces[0][0]
    h = first.ndim + axis                       # positive index of the height axis
    Ho, Wo = first.shape[h], first.shape[h + 1]
    lead, tail = first.shape[:h], first.shape[h + 2:]
    if (sh, sw) == (kh, kw):
        rows = [xp.reshape(xp.stack(row, axis=h + 2), (*lead, Ho, Wo * kw, *tail)) for row in pieces]
        full = xp.reshape(xp.stack(rows, axis=h + 1), (*lead, Ho * kh, Wo * kw, *tail))
        return pad2d(full, ((0, H - Ho * kh), (0, W - Wo * kw)), axis=axis)
    rows = [_shift_sum_axis(row, sw, W, axis + 1) for row in pieces]   # each (.., Ho, W, ..)
    return _shift_sum_axis(rows, sh, H, axis)


def _shift_sum_axis(terms, stride, size, axis):
    total = None
    for q, term in enumerate(terms):
        term = dilate(term, stride, axis)
        term = pad_axis(term, axis, q, size - q - term.shape[axis])
        total = term if total is None else total + term
    return total


# ----- convolution -------------------------------------------------------------------------------
# The GEMM's columns are ordered (oh, ow, n), batch innermost: the kh*kw slices of x laid out as
# (C, H, W, N) are then copied in runs of Wo*N contiguous elements, and col2im adds runs as long.
# The output z = (O, Ho, Wo, N) is returned as its (N, O, Ho, Wo) view (a free transpose on
# backends with strided views), so that the next layers keep the batch innermost too.
def im2col(x, kernel, strides, pads):
    """x (N, C, H, W) -> cols (C*kh*kw, Ho*Wo*N): row (c, i, j) holds the padded input at window
    element (i, j) of channel c for every output position (oh, ow, n). Fast path "im2col"."""
    return _backend().op("im2col")(x, kernel, strides, pads)


@portable_op("im2col")
def _im2col(x, kernel, strides, pads):
    """im2col by stacking the strided slices of the padded input."""
    xp = _backend().xp
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = kernel, strides
    Ho, Wo = _conv_out((H, W), kernel, strides, pads)
    xt = pad2d(xp.permute_dims(x, (1, 2, 3, 0)), pads, axis=-3)          # (C, Hp, Wp, N)
    # the window rows first, then the columns of those: 2*k slices instead of kh*kw (XLA on CPU
    # copies the two stacks several times faster than one stack of kh*kw 2-D strided slices)
    rows = xp.stack([xt[_index(4, -3, slice(i, i + sh * (Ho - 1) + 1, sh))] for i in range(kh)],
                    axis=1)                                             # (C, kh, Ho, Wp, N)
    cols = xp.stack([rows[_index(5, -2, slice(j, j + sw * (Wo - 1) + 1, sw))] for j in range(kw)],
                    axis=2)                                             # (C, kh, kw, Ho, Wo, N)
    return xp.reshape(cols, (C * kh * kw, Ho * Wo * N))


def col2im(dcols, x_shape, kernel, strides, pads):
    """The adjoint of `im2col`: dcols (C*kh*kw, Ho*Wo*N) -> dx (N, C, H, W), each window element
    summed back where it was read from (padding dropped). Fast path "col2im"."""
    return _backend().op("col2im")(dcols, x_shape, kernel, strides, pads)


@portable_op("col2im")
def _col2im(dcols, x_shape, kernel, strides, pads):
    """col2im as shifted sums of the window elements' slices."""
    xp = _backend().xp
    N, C, H, W = x_shape
    (kh, kw), (Ho, Wo) = kernel, _conv_out((H, W), kernel, strides, pads)
    (top, bottom), (left, right) = pads
    d = xp.reshape(dcols, (C, kh, kw, Ho, Wo, N))
    pieces = [[d[:, i, j, ...] for j in range(kw)] for i in range(kh)]
    dxt = shifted_sum(pieces, strides, (H + top + bottom, W + left + right), axis=-3)  # (C, Hp, Wp, N)
    return xp.permute_dims(crop2d(dxt, pads, axis=-3), (3, 0, 1, 2))


def _conv_out(spatial, kernel, strides, pads):
    return tuple(output_size(n, k, s, p) for n, k, s, p in zip(spatial, kernel, strides, pads))


def conv2d_forward(x, kernel, bias, strides, pads):
    """z = conv(x, kernel) + bias (cross-correlation, as every deep-learning library).

    x (N, C, H, W), kernel (O, C, kh, kw), bias (O,) or None -> (z (N, O, Ho, Wo), cache).
    Fast paths "conv2d_forward" + "conv2d_backward", chosen together."""
    backend = _backend()
    z, payload = backend.op("conv2d_forward")(x, kernel, bias, strides, pads)
    return z, (backend.op("conv2d_backward"), payload)


def conv2d_backward(kernel, cache, dz, strides, pads, need_dx=True, need_bias=True):
    """(dx or None, dkernel, dbias or None) for dz = dL/dz of `conv2d_forward`.

    dx is computed only where `need_dx` (the first layer of a model needs none)."""
    backward, payload = cache
    return backward(kernel, payload, dz, strides, pads, need_dx, need_bias)


@portable_op("conv2d_forward")
def _conv2d_forward(x, kernel, bias, strides, pads):
    """One GEMM of the kernel with im2col's columns; the payload is (cols, x's shape)."""
    xp = _backend().xp
    N, C, H, W = x.shape
    O, _, kh, kw = kernel.shape
    Ho, Wo = _conv_out((H, W), (kh, kw), strides, pads)
    cols = im2col(x, (kh, kw), strides, pads)                   # (C*kh*kw, Ho*Wo*N)
    z2 = xp.matmul(xp.reshape(kernel, (O, C * kh * kw)), cols)  # (O, Ho*Wo*N): one GEMM
    if bias is not None:
        z2 = z2 + xp.reshape(bias, (O, 1))
    z = xp.permute_dims(xp.reshape(z2, (O, Ho, Wo, N)), (3, 0, 1, 2))
    return z, (cols, tuple(x.shape))


@portable_op("conv2d_backward")
def _conv2d_backward(kernel, cache, dz, strides, pads, need_dx, need_bias):
    xp = _backend().xp
    cols, x_shape = cache
    O, C, kh, kw = kernel.shape
    dz2 = xp.reshape(xp.permute_dims(dz, (1, 2, 3, 0)), (O, -1))      # (O, Ho*Wo*N)
    dkernel = xp.reshape(xp.matmul(dz2, xp.matrix_transpose(cols)), kernel.shape)
    dbias = xp.sum(dz2, axis=1) if need_bias else None
    dx = None
    if need_dx:
        dcols = xp.matmul(xp.matrix_transpose(xp.reshape(kernel, (O, C * kh * kw))), dz2)
        dx = col2im(dcols, x_shape, (kh, kw), strides, pads)
    return dx, dkernel, dbias


# ----- pooling -----------------------------------------------------------------------------------
def maxpool2d_forward(x, pool, strides, pads):
    """Max over each window of x (N, C, H, W); padding counts as -inf. -> (y, cache).
    Fast paths "maxpool2d_forward" + "maxpool2d_backward", chosen together."""
    backend = _backend()
    y, payload = backend.op("maxpool2d_forward")(x, pool, strides, pads)
    return y, (backend.op("maxpool2d_backward"), payload)


def maxpool2d_backward(cache, dy, pool, strides, pads):
    """dx of `maxpool2d_forward`: each output's gradient goes to the FIRST maximum of its window
    (row-major order), as PyTorch does, so ties never split or double the gradient."""
    backward, payload = cache
    return backward(payload, dy, pool, strides, pads)


@portable_op("maxpool2d_forward")
def _maxpool2d_forward(x, pool, strides, pads):
    """Element-wise maxima of the window slices; the payload is (padded x, y)."""
    xp = _backend().xp
    xpad = pad2d(x, pads, -math.inf)
    out = _conv_out(x.shape[-2:], pool, strides, pads)
    y = None
    for row in windows(xpad, pool, strides, out):
        for w in row:
            y = w if y is None else xp.maximum(y, w)
    return y, (xpad, y)


@portable_op("maxpool2d_backward")
def _maxpool2d_backward(cache, dy, pool, strides, pads):
    xp = _backend().xp
    xpad, y = cache
    pieces, rest = [], dy                     # `rest`: the gradient not yet given to a maximum
    for row in windows(xpad, pool, strides, y.shape[-2:]):
        pieces.append([])
        for w in row:
            hit = w == y
            pieces[-1].append(xp.where(hit, rest, 0.0))
            rest = xp.where(hit, 0.0, rest)
    return crop2d(shifted_sum(pieces, strides, xpad.shape[-2:]), pads)


def window_counts(spatial, pool, strides, pads, dtype):
    """1 / (number of real, unpadded elements) of each window, shape (Ho, Wo): a constant, made
    on the device (no host data: a CUDA graph may capture it)."""
    xp = _backend().xp
    per_axis = []
    for n, k, s, (before, after) in zip(spatial, pool, strides, pads):
        start = xp.arange(0, n + before + after - k + 1, s, dtype=dtype) - before  # in unpadded coordinates
        per_axis.append(xp.clip(start + k, max=n) - xp.clip(start, min=0))
    ch, cw = per_axis
    return 1.0 / (ch[:, None] * cw[None, :])


def avgpool2d_forward(x, pool, strides, pads):
    """Mean over each window of x (N, C, H, W), counting only real (unpadded) elements (Keras)."""
    out = _conv_out(x.shape[-2:], pool, strides, pads)
    total = None
    for row in windows(pad2d(x, pads), pool, strides, out):
        for w in row:
            total = w if total is None else total + w
    scale = window_counts(x.shape[-2:], pool, strides, pads, x.dtype)
    return total * scale, tuple(x.shape)


def avgpool2d_backward(x_shape, dy, pool, strides, pads):
    """dx of `avgpool2d_forward`: each window spreads dy / count over its elements."""
    g = dy * window_counts(x_shape[-2:], pool, strides, pads, dy.dtype)
    pieces = [[g] * pool[1] for _ in range(pool[0])]
    (top, bottom), (left, right) = pads
    size = (x_shape[-2] + top + bottom, x_shape[-1] + left + right)
    return crop2d(shifted_sum(pieces, strides, size), pads)
