"""The CuPy backend: NVIDIA GPUs through CUDA. TF32 is off unless CUPY_TF32=1 is set.

Two things make a training step fast here, where eager CuPy pays a launch (and several
microseconds of Python) for each of the hundreds of small kernels of a step:

- `jit(step)` captures the whole pure step as a CUDA graph, once per argument signature, and
  replays it (`_Graphs`): one launch per step. Capture is refused by CuPy for anything that
  synchronises with the host or copies host data; such a step runs eagerly (one warning).
  PORTANET_CUDA_GRAPHS=0, or `compile(jit_compile=False)`, turns capture off.
- `xp` is array-api-compat's CuPy namespace with functions that a graph can capture in place of
  four: `matmul` calls cuBLAS on a handle of portanet's own (`_Cublas`), because CuPy refuses its
  cuBLAS calls while a stream is captured (cuBLAS itself supports capture); `clip` and `sign`,
  whose compat versions write through a boolean mask (a host synchronisation); and
  `concat`/`stack`, which CuPy does for more than 8 small arrays with a table of pointers copied
  from the host.
"""
import ctypes
import os
import re
import traceback
import warnings

os.environ.setdefault("CUPY_TF32", "0")

import array_api_compat  # noqa: E402
import cupy as cp  # noqa: E402
import cupyx.scipy.special  # noqa: E402
import numpy as np  # noqa: E402

from portanet.backend import Backend, namespace_copy  # noqa: E402
from portanet.errors import BackendUnavailableError  # noqa: E402
from portanet.tree import tree_leaves, tree_unflatten  # noqa: E402


class CupyBackend(Backend):
    name = "cupy"
    version = cp.__version__

    def __init__(self):
        try:
            count = cp.cuda.runtime.getDeviceCount()
        except Exception as error:  # CUDARuntimeError, or a driver that will not load
            raise BackendUnavailableError(
                f"The cupy backend needs an NVIDIA GPU with a working CUDA driver; "
                f"none was found ({type(error).__name__}: {error}). "
                f"Use PORTANET_BACKEND=numpy or jax on this machine.") from None
        if count == 0:
            raise BackendUnavailableError("The cupy backend needs an NVIDIA GPU; this machine has none.")
        self.device = cp.cuda.Device()
        self.cublas = _Cublas()
        self.xp = _namespace(array_api_compat.array_namespace(cp.empty(0)), self.cublas)
        self.graphs = os.environ.get("PORTANET_CUDA_GRAPHS", "1") != "0"
        # fast paths for portanet.ops (parity-tested in tests/test_gpu.py)
        self.fast = {"adam": adam_update, "im2col": im2col, "col2im": col2im, "erf": cupyx.scipy.special.erf}

    def asarray(self, x, dtype=None):
        if not isinstance(x, (cp.ndarray, np.ndarray)) and hasattr(x, "__dlpack__"):
            try:
                x = cp.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError, ValueError):  # a host-only array
                x = np.asarray(x)
        return cp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return cp.asnumpy(x)

    def jit(self, fn, donate_argnums=()):
        return _Graphs(fn, donate_argnums) if self.graphs else fn

    def is_out_of_memory(self, error):
        # cupy.cuda.memory.OutOfMemoryError is a MemoryError; cuBLAS/cuDNN report failed allocations
        return isinstance(error, MemoryError) or "ALLOC_FAILED" in str(error)


def _namespace(base, cublas):
    """`base` (array-api-compat's CuPy namespace) with capture-safe `matmul`, `clip`, `sign`,
    `concat` and `stack`."""
    def matmul(x1, x2, /):
        """x1 (..., k) @ x2 (k, n) of one float dtype on cuBLAS; anything else as CuPy does it."""
        if (x1.ndim >= 2 and x2.ndim == 2 and x1.dtype == x2.dtype and x1.dtype in cublas.gemm
                and x1.shape[-1] == x2.shape[0] and x1.size and x2.size):
            a = x1 if x1.ndim == 2 else cp.reshape(x1, (-1, x1.shape[-1]))
            return cp.reshape(cublas.matmul(a, x2), (*x1.shape[:-1], x2.shape[1]))
        return base.matmul(x1, x2)

    def clip(x, /, min=None, max=None):
        """Array API clip (x's dtype kept) with element-wise maximum/minimum."""
        dtype = x.dtype
        if min is not None:
            x = cp.maximum(x, min)
        if max is not None:
            x = cp.minimum(x, max)
        return x.astype(dtype, copy=False)

    def concat(arrays, /, *, axis=0):
        """cupy.concatenate, joining at most 8 arrays at a time: CuPy joins more small arrays with
        one kernel whose table of pointers it copies from the host, which no graph can capture."""
        arrays = list(arrays)
        if len(arrays) <= _JOIN:
            return base.concat(arrays, axis=axis)
        return concat([base.concat(arrays[i:i + _JOIN], axis=axis) for i in range(0, len(arrays), _JOIN)],
                      axis=axis)

    def stack(arrays, /, *, axis=0):
        """Array API stack through the `concat` above."""
        return concat([cp.expand_dims(a, axis) for a in arrays], axis=axis)

    def sign(x, /):
        """Array API sign (NaN where x is NaN): array-api-compat's version writes its NaNs through
        a boolean mask (a host synchronisation)."""
        out = cp.sign(x)
        return cp.where(cp.isnan(x), x, out) if out.dtype.kind == "f" else out

    return namespace_copy(base, "portanet.backends.cupy.xp", matmul=matmul, clip=clip, concat=concat, stack=stack,
                          sign=sign)


_JOIN = 8  # cupy.concatenate copies more arrays than this (when small) with a host-made pointer table


# ----- fast paths --------------------------------------------------------------------------------
_ADAM = cp.ElementwiseKernel(
    "T p, T g, T m, T v, T lr, T correction_1, T correction_2, T beta_1, T beta_2, T one_minus_beta_1, "
    "T one_minus_beta_2, T epsilon, bool epsilon_hat",
    "T new_p, T new_m, T new_v",
    """
    new_m = beta_1 * m + one_minus_beta_1 * g;
    new_v = beta_2 * v + one_minus_beta_2 * (g * g);
    if (epsilon_hat) {
        T alpha = lr * sqrt(correction_2) / correction_1;
        new_p = p - alpha * new_m / (sqrt(new_v) + epsilon);
    } else {
        new_p = p - lr * (new_m / correction_1) / (sqrt(new_v / correction_2) + epsilon);
    }
    """,
    "portanet_adam")


def adam_update(p, g, m, v, lr, correction_1, correction_2, beta_1, beta_2, epsilon, epsilon_hat):
    """portanet.optimizers.Adam's update of one parameter (amsgrad off) as one kernel, instead of
    about a dozen; (new p, new m, new v). The same formulas, in the same order."""
    return _ADAM(p, g, m, v, lr, correction_1, correction_2, beta_1, beta_2, 1.0 - beta_1, 1.0 - beta_2,
                 epsilon, epsilon_hat)


_IM2COL = cp.ElementwiseKernel(
    "raw T xt, int64 C, int64 H, int64 W, int64 N, int64 kh, int64 kw, int64 sh, int64 sw, int64 top, "
    "int64 left, int64 Ho, int64 Wo",
    "T cols",
    """
    // cols (C, kh, kw, Ho, Wo, N) from xt (C, H, W, N): window element (ki, kj) of output (oh, ow)
    long long rest = i;
    const long long n = rest % N; rest /= N;
    const long long ow = rest % Wo; rest /= Wo;
    const long long oh = rest % Ho; rest /= Ho;
    const long long kj = rest % kw; rest /= kw;
    const long long ki = rest % kh;
    const long long c = rest / kh;
    const long long h = oh * sh + ki - top, w = ow * sw + kj - left;   // unpadded coordinates
    cols = (h >= 0 && h < H && w >= 0 && w < W) ? xt[((c * H + h) * W + w) * N + n] : (T)0;
    """,
    "portanet_im2col")

_COL2IM = cp.ElementwiseKernel(
    "raw T dcols, int64 C, int64 H, int64 W, int64 N, int64 kh, int64 kw, int64 sh, int64 sw, int64 top, "
    "int64 left, int64 Ho, int64 Wo",
    "T dxt",
    """
    // dxt (C, H, W, N): the window elements of dcols (C, kh, kw, Ho, Wo, N) that read x[c, h, w, n],
    // summed as the portable code sums them (each window row's columns, then the rows)
    long long rest = i;
    const long long n = rest % N; rest /= N;
    const long long wp = rest % W + left; rest /= W;
    const long long hp = rest % H + top;
    const long long c = rest / H;
    T total = 0;
    for (long long ki = 0; ki < kh; ++ki) {
        const long long dh = hp - ki;
        if (dh < 0 || dh % sh != 0 || dh / sh >= Ho) continue;
        T row = 0;
        for (long long kj = 0; kj < kw; ++kj) {
            const long long dw = wp - kj;
            if (dw < 0 || dw % sw != 0 || dw / sw >= Wo) continue;
            row += dcols[((((c * kh + ki) * kw + kj) * Ho + dh / sh) * Wo + dw / sw) * N + n];
        }
        total += row;
    }
    dxt = total;
    """,
    "portanet_col2im")


def _conv_geometry(x_shape, kernel, strides, pads):
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = kernel, strides, pads
    Ho, Wo = (H + top + bottom - kh) // sh + 1, (W + left + right - kw) // sw + 1
    return (C, H, W, N, kh, kw, sh, sw, top, left, Ho, Wo)


def im2col(x, kernel, strides, pads):
    """portanet.ops.im2col as one gather kernel (the portable one is a dozen copies)."""
    geometry = _conv_geometry(x.shape, kernel, strides, pads)
    C, _, _, N, kh, kw, _, _, _, _, Ho, Wo = geometry
    xt = cp.ascontiguousarray(x.transpose(1, 2, 3, 0))  # no copy where x has the batch innermost
    cols = cp.empty((C * kh * kw, Ho * Wo * N), dtype=x.dtype)
    _IM2COL(xt, *geometry, cols)
    return cols


def col2im(dcols, x_shape, kernel, strides, pads):
    """portanet.ops.col2im as one kernel, each element summing its window elements in the
    portable code's order (the same result; the portable one is a couple of hundred kernels for a
    5x5 window)."""
    geometry = _conv_geometry(x_shape, kernel, strides, pads)
    C, H, W, N = geometry[:4]
    dxt = cp.empty((C, H, W, N), dtype=dcols.dtype)
    _COL2IM(cp.ascontiguousarray(dcols), *geometry, dxt)
    return dxt.transpose(3, 0, 1, 2)


# ----- cuBLAS ------------------------------------------------------------------------------------
_OP_N, _OP_T = 0, 1
_TF32_TENSOR_OP_MATH = 3
_WORKSPACE_BYTES = 32 << 20  # cuBLAS' recommendation for Hopper; smaller GPUs need less


class _Cublas:
    """Matrix products on a cuBLAS handle of portanet's own, called through ctypes (the library
    CuPy has loaded). Row-major c = a @ b is column-major c^T = b^T a^T, so the operands are
    passed swapped; a transposed (Fortran-ordered) operand is passed with op T, without a copy."""

    def __init__(self):
        probe = cp.ones((2, 2), dtype=cp.float32)
        probe @ probe  # makes CuPy load libcublas
        self.lib = ctypes.CDLL(_mapped_library("libcublas.so"))
        self.handle = ctypes.c_void_p()
        self._check(self.lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate_v2")
        if os.environ.get("CUPY_TF32") == "1":
            self._check(self.lib.cublasSetMathMode(self.handle, _TF32_TENSOR_OP_MATH), "cublasSetMathMode")
        # a workspace of our own: cuBLAS then allocates nothing while a graph is being captured
        self.workspace = cp.empty(_WORKSPACE_BYTES, dtype=cp.uint8)
        self.gemm = {}
        for dtype, name, scalar in ((cp.float32, "cublasSgemm_v2", ctypes.c_float),
                                    (cp.float64, "cublasDgemm_v2", ctypes.c_double)):
            fn = getattr(self.lib, name)
            p, i = ctypes.c_void_p, ctypes.c_int
            fn.argtypes = [p, i, i, i, i, i, p, p, i, p, i, p, p, i]
            fn.restype = ctypes.c_int
            one, zero = scalar(1.0), scalar(0.0)  # kept alive: cuBLAS reads them through pointers
            self.gemm[cp.dtype(dtype)] = (fn, one, zero, ctypes.addressof(one), ctypes.addressof(zero))

    def matmul(self, a, b):
        """a (m, k) @ b (k, n) -> a new (m, n) array, on the current stream."""
        fn, _, _, one, zero = self.gemm[a.dtype]
        (m, k), n = a.shape, b.shape[1]
        a, op_a, lda = _operand(a)
        b, op_b, ldb = _operand(b)
        c = cp.empty((m, n), dtype=a.dtype)
        # setting the stream resets cuBLAS' workspace: both are set on every call
        self._check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(cp.cuda.get_current_stream().ptr)),
                    "cublasSetStream_v2")
        self._check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                                   ctypes.c_size_t(_WORKSPACE_BYTES)), "cublasSetWorkspace_v2")
        self._check(fn(self.handle, op_b, op_a, n, m, k, one, b.data.ptr, ldb, a.data.ptr, lda, zero,
                       c.data.ptr, n), "gemm")
        return c

    @staticmethod
    def _check(status, what):
        if status != 0:
            raise RuntimeError(f"cuBLAS {what} failed with status {status}"
                               + (" (CUBLAS_STATUS_ALLOC_FAILED)" if status == 3 else ""))


def _operand(a):
    """(a, cuBLAS operation, leading dimension) for a 2-D operand read column-major: a C-ordered
    array is its own transpose there (op N), a Fortran-ordered one is passed with op T."""
    if not a.flags.c_contiguous and not a.flags.f_contiguous:
        a = cp.ascontiguousarray(a)
    if a.flags.c_contiguous:
        return a, _OP_N, max(a.shape[1], 1)
    return a, _OP_T, max(a.shape[0], 1)


def _mapped_library(stem):
    """The path of the shared library `stem`(.N) mapped into this process."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith(stem):
                return path
    raise BackendUnavailableError(f"CuPy has not loaded {stem}; portanet's cupy backend calls cuBLAS through it.")


# ----- CUDA graphs -------------------------------------------------------------------------------
class _Graphs:
    """`fn` replayed as CUDA graphs, one per argument signature (the structure of the arguments,
    each array's shape and dtype, every other leaf's value).

    The first call of a signature runs eagerly (CuPy compiles its kernels then); the second is
    captured into a graph, allocating from a memory pool of its own that the graph keeps, and
    every call from then on copies its arguments into the graph's input arrays and launches it.
    Donated arguments (`donate_argnums`, as `jax.jit`'s) are updated in place: when the leading
    outputs have their structure, the graph ends by writing them over the donated inputs, and
    those input arrays are returned, so a training loop that passes them back copies nothing.
    Other outputs are returned as copies. A signature whose capture fails runs eagerly."""

    def __init__(self, fn, donate_argnums=()):
        self.fn, self.donated = fn, frozenset(donate_argnums)
        self.graphs = {}      # signature -> _Captured, or None after a failed capture
        self.failures = {}    # signature -> why its capture failed

    def __call__(self, *args):
        leaves, starts = [], []
        signature = []
        for arg in args:
            starts.append(len(leaves))
            signature.append(_describe(arg, leaves))
        try:
            signature = tuple(signature)
            captured = self.graphs.get(signature, False)
        except TypeError:  # an unhashable leaf: never captured
            return self.fn(*args)
        if captured is False:           # first call: eager
            self.graphs[signature] = "seen"
            return self.fn(*args)
        if captured == "seen":          # second call: capture
            donated = [i for a in sorted(self.donated) if a < len(args)
                       for i in range(starts[a], starts[a + 1] if a + 1 < len(args) else len(leaves))
                       if isinstance(leaves[i], cp.ndarray)]
            try:
                captured = _Captured(self.fn, args, leaves, donated)
            except MemoryError:
                self.graphs[signature] = "seen"
                raise
            except Exception as error:  # CuPy refuses capture (a host transfer or synchronisation)
                captured = None
                self.failures[signature] = f"{type(error).__name__}: {error}{_where(error)}"
                if len(self.failures) == 1:
                    warnings.warn(f"portanet: {getattr(self.fn, '__name__', 'a step')} runs without a CUDA graph "
                                  f"(capture failed: {self.failures[signature]})", RuntimeWarning, stacklevel=2)
            self.graphs[signature] = captured
        if captured is None:
            return self.fn(*args)
        return captured.run(leaves)


def _where(error):
    """' at FILE:LINE in FUNCTION': the innermost line of portanet's own code that `error` passed
    through outside this module (the line that synchronised with the host), or ''."""
    here = os.path.abspath(__file__)
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(f.filename) != here and not re.search(r"(^|[\\/])cupy(x|_backends)?[\\/]", f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


def _describe(tree, leaves):
    """Appends the leaves of `tree` to `leaves`; returns a hashable description of `tree`."""
    if isinstance(tree, dict):
        return ("dict", tuple(tree), tuple(_describe(v, leaves) for v in tree.values()))
    if isinstance(tree, (list, tuple)):
        return (type(tree), tuple(_describe(v, leaves) for v in tree))
    leaves.append(tree)
    if isinstance(tree, cp.ndarray):
        return ("array", tree.shape, tree.dtype.char)
    return ("value", type(tree), tree)


class _Captured:
    """One captured graph: its input arrays, its memory pool and how to build its outputs."""

    def __init__(self, fn, args, leaves, donated):
        self.inputs = [leaf.copy() if isinstance(leaf, cp.ndarray) else leaf for leaf in leaves]
        static_args = tree_unflatten(list(args), self.inputs)
        self.pool = cp.cuda.MemoryPool()  # kept as long as the graph: its addresses are in it
        stream = cp.cuda.Stream(non_blocking=True)
        with cp.cuda.using_allocator(self.pool.malloc), stream:
            stream.begin_capture()
            try:
                outputs = fn(*static_args)
                self.structure = outputs
                self.outputs = self._write_back(tree_leaves(outputs), donated)
            except BaseException:
                try:
                    stream.end_capture()
                except Exception:  # the capture was invalidated: the original error says why
                    pass
                raise
            self.graph = stream.end_capture()
        self.graph.upload()

    def _write_back(self, out, donated):
        """Inside the capture: the leading outputs written over the donated inputs they replace.
        Returns, per output leaf, ("input", i) for those, else ("output", array) or ("value", v)."""
        targets = [self.inputs[i] for i in donated]
        matches = len(out) >= len(targets) and all(
            isinstance(o, cp.ndarray) and o.shape == t.shape and o.dtype == t.dtype for o, t in zip(out, targets))
        if not matches:
            donated, targets = [], []
        # an output that is (a view of) another donated input is copied first, before any write
        owners = {t.data.mem.ptr: t for t in targets}
        sources = [o.copy() if owners.get(o.data.mem.ptr, t) is not t else o for o, t in zip(out, targets)]
        for source, target in zip(sources, targets):
            if source is not target:
                target[...] = source
        plan = [("input", i) for i in donated]
        for o in out[len(donated):]:
            plan.append(("output", o) if isinstance(o, cp.ndarray) else ("value", o))
        return plan

    def run(self, leaves):
        for leaf, static in zip(leaves, self.inputs):
            if isinstance(leaf, cp.ndarray) and leaf is not static:
                static[...] = leaf
        self.graph.launch()
        values = [self.inputs[v] if kind == "input" else v.copy() if kind == "output" else v
                  for kind, v in self.outputs]
        return tree_unflatten(self.structure, values)


def make():
    return CupyBackend()
