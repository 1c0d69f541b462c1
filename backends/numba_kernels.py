"""Compiled loops for the NumPy backend's fast paths, with numba (optional: `pip install
portanet[fast]`; PORTANET_NUMBA=0 turns them off). Each does in one pass over memory what NumPy
does in a pass per operation, and computes the same operations in the same order and dtype as
the NumPy code it replaces (no fast-math), so the results are the same bits
(tests/test_kernels.py). They run on the calling thread: numba's thread pool and OpenBLAS's
threads, both spinning while they wait, slowed each other's work 2-3x inside a training step
(docs/architecture.md, "Compiled kernels"); they release the GIL, so the convolution's dx adds
run beside dkernel's products on the backend's own threads (`Workers`). error_model="numpy": a
division by zero gives inf or nan as in NumPy, and the loops vectorize (with Python's checks they
do not)."""
import numba
import numpy as np

FLOATS = (np.float32, np.float64)
compiled = numba.njit(cache=True, error_model="numpy", nogil=True)


def flat_views(*arrays):
    """1-D views of arrays of one shape, strides and float dtype that fill their memory without
    gaps (in some order of axes), else None."""
    a = arrays[0]
    if a.dtype.type not in FLOATS or any(b.shape != a.shape or b.strides != a.strides or b.dtype != a.dtype
                                         for b in arrays):
        return None
    order = sorted(range(a.ndim), key=lambda k: (-a.strides[k], k))
    if not a.transpose(order).flags.c_contiguous:
        return None
    return [b.transpose(order).reshape(-1) for b in arrays]


def empty_like_flat(a):
    """(an empty array laid out as `a`, a 1-D view of it): `a` is one of flat_views' arrays."""
    out = np.empty_like(a)   # order="K": a's layout
    return out, flat_views(out)[0]


def adam(p, g, m, v, lr, correction_1, correction_2, beta_1, beta_2, epsilon, epsilon_hat):
    """portanet.optimizers.adam's "adam" operation (one parameter, amsgrad off) in one pass over
    p, g, m and v: (new p, new m, new v); None where they differ in layout or dtype. Python
    numbers enter in p's dtype, as NumPy casts them."""
    flat = flat_views(p, g, m, v)
    if flat is None:
        return None
    t = p.dtype.type
    (new_p, out_p), (new_m, out_m), (new_v, out_v) = (empty_like_flat(p) for _ in range(3))
    lr, correction_1, correction_2 = t(lr), t(correction_1), t(correction_2)
    betas = t(beta_1), t(beta_2), t(1.0 - beta_1), t(1.0 - beta_2)
    if epsilon_hat:
        alpha = lr * np.sqrt(correction_2) / correction_1
        _adam_epsilon_hat(*flat, alpha, *betas, t(epsilon), out_p, out_m, out_v)
    else:
        _adam(*flat, lr, correction_1, correction_2, *betas, t(epsilon), out_p, out_m, out_v)
    return new_p, new_m, new_v


@compiled
def _adam(p, g, m, v, lr, c1, c2, b1, b2, one_minus_b1, one_minus_b2, epsilon, new_p, new_m, new_v):
    for i in range(p.size):
        m_i = b1 * m[i] + one_minus_b1 * g[i]
        v_i = b2 * v[i] + one_minus_b2 * (g[i] * g[i])
        new_m[i], new_v[i] = m_i, v_i
        new_p[i] = p[i] - lr * (m_i / c1) / (np.sqrt(v_i / c2) + epsilon)


@compiled
def _adam_epsilon_hat(p, g, m, v, alpha, b1, b2, one_minus_b1, one_minus_b2, epsilon, new_p, new_m, new_v):
    for i in range(p.size):
        m_i = b1 * m[i] + one_minus_b1 * g[i]
        v_i = b2 * v[i] + one_minus_b2 * (g[i] * g[i])
        new_m[i], new_v[i] = m_i, v_i
        new_p[i] = p[i] - alpha * m_i / (np.sqrt(v_i) + epsilon)


def rmsprop(p, g, v, a, m, lr, rho, momentum, epsilon):
    """portanet.optimizers.rmsprop's "rmsprop" operation in one pass: (new p, new v, new a, new m),
    a and m None where they are given as None; None where the arrays differ in layout or dtype."""
    given = [x for x in (p, g, v, a, m) if x is not None]
    flat = flat_views(*given)
    if flat is None:
        return None
    t = p.dtype.type
    new = [empty_like_flat(p) if x is not None else (None, None) for x in (p, v, a, m)]
    flat_a = flat[3] if a is not None else None
    flat_m = flat[-1] if m is not None else None
    _rmsprop(*flat[:3], flat_a, flat_m, t(lr), t(rho), t(1.0 - rho), t(momentum), t(epsilon), *(o for _, o in new))
    return tuple(array for array, _ in new)


@compiled
def _rmsprop(p, g, v, a, m, lr, rho, one_minus_rho, momentum, epsilon, new_p, new_v, new_a, new_m):
    for i in range(p.size):
        v_i = rho * v[i] + one_minus_rho * (g[i] * g[i])
        new_v[i] = v_i
        if a is not None:
            a_i = rho * a[i] + one_minus_rho * g[i]
            new_a[i] = a_i
            denominator = v_i - a_i * a_i + epsilon
        else:
            denominator = v_i + epsilon
        increment = lr * g[i] / np.sqrt(denominator)
        if m is not None:
            m_i = momentum * m[i] + increment
            new_m[i] = m_i
            new_p[i] = p[i] - m_i
        else:
            new_p[i] = p[i] - increment


@compiled
def maxpool2d_backward(x, y, dy, pool, strides, dx):
    """Adds dy (C, Ho, Wo, N) into zeroed dx (C, Hp, Wp, N) at the first maximum (row-major) of
    each window of x (C, Hp, Wp, N), whose maxima are y (C, Ho, Wo, N): `rest` holds each
    output's gradient until a window element equal to its maximum takes it. Window element by
    element (i, j), as NumPy's fast path: overlapping windows add in the same order."""
    C, Ho, Wo, N = y.shape
    rest = np.empty((Ho, Wo, N), dtype=dx.dtype)
    for c in range(C):
        rest[:] = dy[c]
        for i in range(pool[0]):
            for j in range(pool[1]):
                for oh in range(Ho):
                    for ow in range(Wo):
                        h, w = oh * strides[0] + i, ow * strides[1] + j
                        for n in range(N):
                            if x[c, h, w, n] == y[c, oh, ow, n]:
                                dx[c, h, w, n] += rest[oh, ow, n]
                                rest[oh, ow, n] = 0


@compiled
def add_kernel_row(d, dx, top, strides):
    """The convolution's dx from one kernel row: d (C, kw, rows, Wo, N) added into dx (C, Hp,
    Wp, N) at rows top, top + sh, ... and columns j, j + sw, ... for each kernel column j (in the
    order of backends/numpy.py's add_kernel_row)."""
    C, kw, rows, Wo, N = d.shape
    for c in range(C):
        for r in range(rows):
            for j in range(kw):
                for ow in range(Wo):
                    for n in range(N):
                        dx[c, top + r * strides[0], ow * strides[1] + j, n] += d[c, j, r, ow, n]
