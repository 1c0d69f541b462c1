"""The NumPy backend (default): CPU, float32 by default, no compilation. BLAS runs on the usable
cores, or on one thread on a machine already busier than its cores (PORTANET_NUM_THREADS
overrides); with glibc, malloc keeps freed memory for the next step (PORTANET_MALLOC=system
leaves it alone). See docs/architecture.md, "Threads"."""
import concurrent.futures
import contextvars
import ctypes
import functools
import importlib
import os
import platform
import threading
import time

import array_api_compat
import numpy as np

from portanet.backend import Backend, portable_version
from portanet.errors import invalid
from portanet.random import PARITY, ROTATIONS

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # an optional dependency: without it BLAS keeps its own threads
    ThreadpoolController = None


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def others_running(samples=5):
    """How many processes besides this one want a core now: the median of a few samples of
    Linux's procs_running (/proc/stat), less this process; else, where there is no /proc, the
    1-minute load average (which lags: it still counts work that ended a minute ago)."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/stat") as f:
                counts += [int(line.split()[1]) - 1 for line in f if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        time.sleep(0.005)
    return sorted(counts)[len(counts) // 2] if counts else 0.0


def choose_threads():
    """PORTANET_NUM_THREADS, else the usable cores, else 1 on a machine whose cores are all taken
    by other running processes: there, extra threads wait on each other (and OpenBLAS's spin)."""
    value = os.environ.get("PORTANET_NUM_THREADS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise invalid("PORTANET_NUM_THREADS", "a positive integer", value)
        return int(value), "PORTANET_NUM_THREADS"
    cores = usable_cores()
    others = others_running() if cores > 1 else 0
    if others >= cores:
        return 1, f"the machine is busy: {others:g} other processes running on {cores} cores"
    return cores, f"the usable cores ({cores})"


def switch(name):
    """An on/off environment variable's setting: "1", "0" or "" (unset)."""
    setting = os.environ.get(name, "")
    if setting not in ("", "0", "1"):
        raise invalid(name, '"0" or "1" (or unset)', setting)
    return setting


class AdaptiveThreads:
    """A step run on the BLAS thread count that is fastest now, among the backend's count and its
    halvings down to 1 (docs/architecture.md, "Threads"). Every call is timed; every PROBE calls,
    or as soon as the median of the last RUNS calls is SLOWER times the median that chose the
    count, the next calls try the neighbouring counts (RUNS calls each) and the fastest median
    wins. On a machine whose second core is at times shared with other work, a 2-thread LeNet-5
    step took 15 ms where 1 thread took 9.5 (and 8.7 against 9.5 the rest of the time). Opt-in:
    OpenBLAS sums some products in blocks that depend on its thread count (an MLP's 50x784x40
    product differs in its last bits on 1 and 2 threads), so a run's bits then depend on timing."""

    PROBE, RUNS, SLOWER = 100, 5, 1.25

    def __init__(self, fn, set_threads, most):
        self.fn, self.set_threads = fn, set_threads
        self.counts = sorted({most >> k for k in range(most.bit_length())})   # e.g. [1, 2, 4, 8]
        self.current = len(self.counts) - 1
        self.recent, self.trials, self.results = [], [], []
        self.calls, self.chosen = self.PROBE - 2 * self.RUNS, None   # the first probe comes early

    def __call__(self, *args, **kwargs):
        index = self.trials[0][0] if self.trials else self.current
        self.set_threads(self.counts[index])
        start = time.perf_counter()
        try:
            out = self.fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            self.set_threads(self.counts[-1])   # numpy work outside the steps keeps every thread
        if self.trials:
            self.trials[0][1].append(elapsed)
            if len(self.trials[0][1]) == self.RUNS:
                self.results.append(self.trials.pop(0))
                if not self.trials:
                    self._choose()
            return out
        self.recent = (self.recent + [elapsed])[-self.RUNS:]
        self.calls += 1
        slower = self.chosen is not None and _median(self.recent) > self.SLOWER * self.chosen
        if len(self.recent) == self.RUNS and (self.calls >= self.PROBE or slower):
            self.results = [(self.current, self.recent)]
            self.trials = [(i, []) for i in (self.current - 1, self.current + 1) if 0 <= i < len(self.counts)]
        return out

    def _choose(self):
        self.current, times = min(self.results, key=lambda result: _median(result[1]))
        self.chosen, self.recent, self.calls = _median(times), [], 0

    def threads(self):
        return self.counts[self.current]


class Workers:
    """The numpy backend's own threads (docs/architecture.md, "Threads"): `run` shares a
    convolution's tasks (chunks of output rows, dx's loop) among the calling thread and count - 1
    pool threads (NumPy and BLAS release the GIL; each task sees the caller's NumPy error state).
    A task is the same calls on any thread, and BLAS runs on one thread while the pool works (its
    own threads would oversubscribe the cores, and they spin for a while after each product), so
    a convolution's results are the bits of a one-thread run for every count. BLAS gets its threads
    back when no step and no run is active any more (`step`: products after a shared convolution
    in the same step stay on one thread, where OpenBLAS's spinning threads would slow the next
    convolution; outside steps, at the run's end)."""

    def __init__(self, count, set_blas_threads):
        self.count, self.set_blas_threads = count, set_blas_threads
        self.pool, self.pid = None, None
        self.active, self.lock = 0, threading.Lock()   # steps and runs going on, in any of the user's threads

    def run(self, tasks):
        """Call every task (a function of no arguments that writes its own part of a result); each
        thread takes the next one as it becomes free, so a slower core takes fewer."""
        if len(tasks) < 2:
            return serially(tasks)
        with self.lock:
            if self.pid != os.getpid():   # a forked process has none of its parent's threads
                self.pool = concurrent.futures.ThreadPoolExecutor(self.count - 1, "portanet-numpy")
                self.pid = os.getpid()
            self.active += 1
            self.set_blas_threads(1)
        try:
            queue, futures = iter(tasks), []   # shared: next() is atomic under the GIL
            try:
                for _ in range(min(self.count, len(tasks)) - 1):
                    futures.append(self.pool.submit(contextvars.copy_context().run, serially, queue))
            except RuntimeError:   # the interpreter is shutting down: the calling thread does the rest
                pass
            try:
                serially(queue)
            finally:
                concurrent.futures.wait(futures)
            for future in futures:
                future.result()   # raises what a task raised there
        finally:
            self._leave()

    def step(self, fn):
        """fn, giving BLAS back its threads when it returns (unless another step or run is active)."""
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with self.lock:
                self.active += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._leave()
        return run

    def _leave(self):
        with self.lock:
            self.active -= 1
            if not self.active:
                self.set_blas_threads(self.count)


def serially(tasks):
    """`Workers.run` on the calling thread alone."""
    for task in tasks:
        task()


def _median(values):
    return sorted(values)[len(values) // 2]


HEAP = {"M_MMAP_THRESHOLD": (-3, 32 << 20), "M_TRIM_THRESHOLD": (-1, 256 << 20)}   # mallopt's codes, bytes


def keep_freed_memory():
    """Tell glibc's malloc to serve blocks up to 32 MiB from its heap and to keep up to 256 MiB of
    freed heap, instead of returning large blocks to the system when they are freed: a training
    step frees and allocates the same large arrays every step, and each page the system hands out
    again costs a page fault (a CIFAR-sized convolution model, batch 128: about 4,700 faults and
    13% of each step; docs/architecture.md, "Threads"). For the whole process; not where
    PORTANET_MALLOC=system, where MALLOC_* or GLIBC_TUNABLES settings are given, or without
    glibc. Returns what was done, for `python -m portanet info`."""
    setting = os.environ.get("PORTANET_MALLOC")
    if setting not in (None, "", "system"):
        raise invalid("PORTANET_MALLOC", '"system" (or unset)', setting)
    if setting == "system":
        return "the system's malloc settings (PORTANET_MALLOC=system)"
    if any(name.startswith("MALLOC_") for name in os.environ) or "GLIBC_TUNABLES" in os.environ:
        return "the system's malloc settings, with the MALLOC_*/GLIBC_TUNABLES environment given"
    if platform.libc_ver()[0] != "glibc":
        return "the system's malloc (not glibc)"
    libc = ctypes.CDLL(None)
    if not all(libc.mallopt(code, value) for code, value in HEAP.values()):
        return "the system's malloc settings (mallopt refused)"
    return "malloc keeps freed memory for reuse (heap blocks up to 32 MiB, up to 256 MiB kept; " \
           "PORTANET_MALLOC=system: glibc's defaults)"


def load_kernels():
    """backends/numba_kernels.py where numba is installed (portanet[fast]) and PORTANET_NUMBA is
    not 0: (the module or None, why), for `python -m portanet info`."""
    setting = switch("PORTANET_NUMBA")
    if setting == "0":
        return None, "off (PORTANET_NUMBA=0)"
    try:
        module = importlib.import_module("portanet.backends.numba_kernels")
    except ImportError as error:
        if setting == "1":
            raise ImportError(f"PORTANET_NUMBA=1 needs numba (pip install portanet[fast]): {error}") from error
        return None, "off (numba is not installed: pip install portanet[fast])"
    return module, (f"numba {module.numba.__version__}: Adam's and RMSprop's updates, max pooling's backward "
                    "and the convolution's dx compiled (PORTANET_NUMBA=0: off)")


class NumpyBackend(Backend):
    name = "numpy"
    device = "cpu"
    version = np.__version__

    def __init__(self):
        self.xp = array_api_compat.array_namespace(np.empty(0))
        self.threads, self.threads_why = choose_threads()
        self.memory_why = keep_freed_memory()
        self.blas = ThreadpoolController() if ThreadpoolController is not None else None
        self.blas_libraries, self.blas_threads = [], self.threads
        if self.blas is not None:
            self.blas.limit(limits=self.threads, user_api="blas")   # for the whole process
            self.blas_libraries = [lib for lib in self.blas.lib_controllers if lib.user_api == "blas"]
        # opt-in: OpenBLAS's bits depend on its thread count for some products (AdaptiveThreads)
        self.adaptive = switch("PORTANET_ADAPT_THREADS") == "1" and self.threads > 1 and bool(self.blas_libraries)
        # Fast paths for portanet.ops (same signatures and results as the portable versions there,
        # parity-tested in tests/test_conv.py and tests/test_pooling.py): in-place writes into
        # preallocated arrays instead of stacking, padding and summing new ones.
        self.fast = {"im2col": im2col, "col2im": col2im,
                     "conv2d_forward": conv2d_forward, "conv2d_backward": conv2d_backward,
                     "maxpool2d_forward": maxpool2d_forward, "maxpool2d_backward": maxpool2d_backward,
                     "blockwise": blockwise, "foreach": foreach, "scatter_add_rows": scatter_add_rows,
                     "relu_backward": relu_backward, "threefry2x32": threefry2x32}
        self.kernels, self.kernels_why = load_kernels()
        if self.kernels is not None:   # compiled loops in place of some of them (same results)
            self.fast.update(compiled_paths(self.kernels))
        self.workers = None
        if switch("PORTANET_POOL") != "0" and self.threads > 1 and self.blas_libraries:
            self.workers = Workers(self.threads, self.set_blas_threads)
            for name in ("conv2d_forward", "conv2d_backward"):   # their chunks shared by the threads
                self.fast[name] = functools.partial(self.fast[name], run_tasks=self.workers.run)

    def jit(self, fn, donate_argnums=()):
        """No compilation: `fn` gives BLAS back its threads at its end (Workers.step) and, with
        adaptive threads, runs on the BLAS thread count that is fastest now (AdaptiveThreads)."""
        step = self.workers.step(fn) if self.workers is not None else fn
        return AdaptiveThreads(step, self.set_blas_threads, self.threads) if self.adaptive else step

    def set_blas_threads(self, count):
        if count != self.blas_threads:
            for lib in self.blas_libraries:
                lib.set_num_threads(count)
            self.blas_threads = count

    def asarray(self, x, dtype=None):
        if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack__"):
            try:
                x = np.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError):  # e.g. a tensor on another device
                x = np.asarray(x)
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x)

    def quiet(self):
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    def memory_report(self):
        return self.memory_why

    def kernel_report(self):
        return self.kernels_why

    def thread_report(self):
        blas = [f"{i['internal_api']} {i['num_threads']}" for i in self.blas.info() if i["user_api"] == "blas"] \
            if self.blas is not None else ["threadpoolctl not installed: BLAS's own default"]
        adapted = f", each step on the fastest of {self.threads} and fewer as it runs (PORTANET_ADAPT_THREADS=1)" \
            if self.adaptive else ""
        pool = f"; convolutions' chunks of rows shared by {self.threads} threads, BLAS on one meanwhile " \
            "(PORTANET_POOL=0: off)" if self.workers is not None else ""
        return f"{self.threads} ({self.threads_why}{adapted}){pool}; BLAS: {', '.join(blas) or 'none found'}"


# ----- fast paths for portanet.ops ---------------------------------------------------------------
def _sizes(spatial, kernel, strides, pads):
    padded = tuple(n + p[0] + p[1] for n, p in zip(spatial, pads))
    out = tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel, strides))
    return padded, out


def _window(kernel_offset, stride, out):
    return slice(kernel_offset, kernel_offset + stride * (out - 1) + 1, stride)


def _empty_like_layout(x, shape, fill=None):
    """An array of `shape` (x's rank) whose axes lie in memory in the same order as x's, so that
    element-wise work between the two runs over contiguous memory."""
    order = sorted(range(x.ndim), key=lambda a: (-x.strides[a], a))
    out = np.empty([shape[a] for a in order], dtype=x.dtype)
    if fill is not None:
        out.fill(fill)
    return out.transpose(np.argsort(order))


def im2col(x, kernel, strides, pads):
    """portanet.ops.im2col: the padded input laid out once as (C, Hp, Wp, N), then every window
    element's slice copied at once (`_columns` of all output rows)."""
    N, _, H, W = x.shape
    _, (Ho, Wo) = _sizes((H, W), kernel, strides, pads)
    cols = _columns(_batch_last(x, pads), kernel, strides, slice(0, Ho), Wo)   # (Ho, C*kh*kw, Wo*N)
    return cols.transpose(1, 0, 2).reshape(-1, Ho * Wo * N)


def col2im(dcols, x_shape, kernel, strides, pads):
    """portanet.ops.col2im: kh*kw in-place adds into one zeroed (C, Hp, Wp, N) array."""
    N, C, H, W = x_shape
    (kh, kw), ((top, _), (left, _)) = kernel, pads
    (Hp, Wp), (Ho, Wo) = _sizes((H, W), kernel, strides, pads)
    d = dcols.reshape(C, kh, kw, Ho, Wo, N)
    out = np.zeros((C, Hp, Wp, N), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, _window(i, strides[0], Ho), _window(j, strides[1], Wo), :] += d[:, i, j]
    return out[:, top:top + H, left:left + W, :].transpose(3, 0, 1, 2)


def conv2d_forward(x, kernel, bias, strides, pads, run_tasks=serially):
    """portanet.ops.conv2d_forward computed a few output rows at a time: each chunk's columns
    (im2col of those rows, about CHUNK bytes) are copied while in cache and multiplied at once, one
    GEMM per output row (skinny GEMMs are several times faster on (C*kh*kw, Wo*N) pieces than on
    the whole (C*kh*kw, Ho*Wo*N)); `run_tasks` runs the chunks (Workers.run: on the backend's
    threads). The cache is the padded input laid out as (C, Hp, Wp, N): the columns are made again
    in the backward pass (faster than keeping them: docs/architecture.md, "Threads")."""
    N, C, H, W = x.shape
    O, _, kh, kw = kernel.shape
    _, (Ho, Wo) = _sizes((H, W), (kh, kw), strides, pads)
    xt = _batch_last(x, pads)
    k2 = kernel.reshape(O, -1)
    z = np.empty((O, Ho, Wo * N), dtype=x.dtype)

    def rows(chunk):
        out = z[:, chunk].transpose(1, 0, 2)                          # (rows, O, Wo*N)
        np.matmul(k2, _columns(xt, (kh, kw), strides, chunk, Wo), out=out)
        if bias is not None:
            out += bias.reshape(O, 1)

    run_tasks([functools.partial(rows, chunk) for chunk in _chunks(Ho, k2.shape[1] * Wo * N * x.itemsize)])
    return z.reshape(O, Ho, Wo, N).transpose(3, 0, 1, 2), (xt, tuple(x.shape))


def add_kernel_row(d, dx, top, strides):
    """d (C, kw, rows, Wo, N), the columns' gradient from one kernel row, added into dx (C, Hp,
    Wp, N) at rows top, top + sh, ...: one strided add per kernel column j."""
    _, kw, rows, Wo, _ = d.shape
    for j in range(kw):
        dx[:, _window(top, strides[0], rows), _window(j, strides[1], Wo), :] += d[:, j]


def conv2d_backward(kernel, cache, dz, strides, pads, need_dx=True, need_bias=True, add_row=add_kernel_row,
                    run_tasks=serially):
    """portanet.ops.conv2d_backward in chunks of rows, as the forward pass: dkernel summed from one
    partial GEMM per output row, dx from one GEMM per kernel row i and chunk, added into place by
    `add_row` (backends/numba_kernels.py has a compiled one). `run_tasks` runs dx's loop and
    dkernel's chunks (Workers.run: dx beside dkernel on the backend's threads)."""
    xt, x_shape = cache
    O, C, kh, kw = kernel.shape
    N, _, H, W = x_shape
    (Hp, Wp), (Ho, Wo) = _sizes((H, W), (kh, kw), strides, pads)
    run = Wo * N
    dz3 = _batch_last(dz, ((0, 0), (0, 0))).reshape(O, Ho, run)
    partials = np.empty((Ho, C * kh * kw, O), dtype=dz3.dtype)
    dx = np.zeros((C, Hp, Wp, N), dtype=dz3.dtype) if need_dx else None

    def dkernel_rows(chunk):
        np.matmul(_columns(xt, (kh, kw), strides, chunk, Wo), dz3[:, chunk].transpose(1, 2, 0), out=partials[chunk])

    def dx_rows():
        sh, krows = strides[0], kernel.transpose(2, 1, 3, 0).reshape(kh, C * kw, O)
        for i in range(kh):
            for chunk in _chunks(Ho, C * kw * run * dz.itemsize, DX_CHUNK):
                count = chunk.stop - chunk.start
                d = (krows[i] @ dz3[:, chunk].reshape(O, -1)).reshape(C, kw, count, Wo, N)
                add_row(d, dx, chunk.start * sh + i, strides)

    chunks = _chunks(Ho, C * kh * kw * run * dz.itemsize)
    dkernel_tasks = [functools.partial(dkernel_rows, chunk) for chunk in chunks]
    run_tasks(([dx_rows] if need_dx else []) + dkernel_tasks)   # dx first: its loop is the longest task
    dkernel = partials.sum(axis=0).T.reshape(kernel.shape)
    dbias = dz3.sum(axis=(1, 2)) if need_bias else None
    if not need_dx:
        return None, dkernel, dbias
    (top, _), (left, _) = pads
    return dx[:, top:top + H, left:left + W, :].transpose(3, 0, 1, 2), dkernel, dbias


CHUNK = 1 << 21   # bytes of columns per chunk (512 KiB to 2 MiB timed alike on LeNet-5's layers)
DX_CHUNK = 1 << 18   # bytes of dx's products per chunk, added into place while in cache: LeNet-5's
#                      second layer's dx loop 0.91 ms in chunks of one row (150 KiB), 1.36 in one of 10


def _chunks(rows, bytes_per_row, size=None):
    """range(rows) cut into slices of about `size` bytes (default CHUNK; at least one row each)."""
    step = max(1, (size or CHUNK) // bytes_per_row)
    return [slice(a, min(a + step, rows)) for a in range(0, rows, step)]


def _columns(xt, kernel, strides, rows, Wo):
    """im2col's columns of output rows `rows` from xt (C, Hp, Wp, N): one (C*kh*kw, Wo*N) matrix
    per row, as a (rows, C*kh*kw, Wo*N) array (one copy of a strided view)."""
    C, _, _, N = xt.shape
    sC, sH, sW, sN = xt.strides
    count = rows.stop - rows.start
    view = np.lib.stride_tricks.as_strided(
        xt[:, rows.start * strides[0]:], shape=(C, *kernel, count, Wo, N),
        strides=(sC, sH, sW, sH * strides[0], sW * strides[1], sN), writeable=False)
    return np.array(view, order="C").reshape(-1, count, Wo * N).transpose(1, 0, 2)


def _batch_last(x, pads):
    """x (N, C, H, W) zero-padded and laid out as a contiguous (C, Hp, Wp, N) array: x's own
    memory where it already is one, else copied 16 samples at a time (a plain transposing copy
    is several times slower where H*W*C is a multiple of 1024 floats: 4 KiB apart, the reads
    of one run of N map to the same cache sets)."""
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        xt = x.transpose(1, 2, 3, 0)
        if xt.flags.c_contiguous:
            return xt
        out = np.empty(xt.shape, dtype=x.dtype)
    else:
        out = np.zeros((C, H + top + bottom, W + left + right, N), dtype=x.dtype)
    for n in range(0, N, 16):
        out[:, top:top + H, left:left + W, n:n + 16] = x[n:n + 16].transpose(1, 2, 3, 0)
    return out


def _pad_like(x, pads, value):
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    N, C, H, W = x.shape
    out = _empty_like_layout(x, (N, C, H + top + bottom, W + left + right), fill=value)
    out[:, :, top:top + H, left:left + W] = x
    return out


def _batch_innermost(x):
    """x (N, C, H, W) itself where its batch axis is contiguous in memory, else a copy laid out as
    (C, H, W, N): strided windows of it then still read contiguous runs of N elements, where
    with W innermost every read would skip (NumPy is several times slower on such loops)."""
    if x.strides[0] == x.itemsize or x.shape[0] == 1:
        return x
    return _batch_last(x, ((0, 0), (0, 0))).transpose(3, 0, 1, 2)


def maxpool2d_forward(x, pool, strides, pads):
    """portanet.ops.maxpool2d_forward with in-place maxima (same cache: the padded x and y), on x
    laid out with the batch innermost (as portanet's Conv2D returns it)."""
    xpad = _pad_like(_batch_innermost(x), pads, -np.inf)
    _, (Ho, Wo) = _sizes(x.shape[2:], pool, strides, pads)
    views = [xpad[:, :, _window(i, strides[0], Ho), _window(j, strides[1], Wo)]
             for i in range(pool[0]) for j in range(pool[1])]
    y = np.array(views[0], order="K")
    for view in views[1:]:
        np.maximum(y, view, out=y)
    return y, (xpad, y)


def maxpool2d_backward(cache, dy, pool, strides, pads):
    """portanet.ops.maxpool2d_backward: the gradient is written (non-overlapping windows) or added
    (overlapping) at the first maximum of each window, in place and in x's memory layout. Masks
    are applied by multiplying with booleans (much faster in NumPy than `where`), so a gradient of
    inf or nan would also turn the zeros of its window into nan; finite gradients match exactly."""
    xpad, y = cache
    (top, bottom), (left, right) = pads
    Ho, Wo = y.shape[2:]
    dx = _empty_like_layout(xpad, xpad.shape, fill=0)
    rest = np.empty_like(y)                       # the gradient not yet given to a maximum,
    np.copyto(rest, dy)                           # laid out as y (all work below is then contiguous)
    overlap = strides[0] < pool[0] or strides[1] < pool[1]
    hit = np.empty_like(y, dtype=bool)
    part = np.empty_like(rest) if overlap else None
    last = (pool[0] - 1, pool[1] - 1)
    for i in range(pool[0]):
        for j in range(pool[1]):
            index = (slice(None), slice(None), _window(i, strides[0], Ho), _window(j, strides[1], Wo))
            np.equal(xpad[index], y, out=hit)
            if overlap:
                np.multiply(hit, rest, out=part)
                dx[index] += part
            else:
                np.multiply(hit, rest, out=dx[index])
            if (i, j) != last:
                np.logical_not(hit, out=hit)
                np.multiply(rest, hit, out=rest)
    H, W = xpad.shape[2] - top - bottom, xpad.shape[3] - left - right
    return dx[:, :, top:top + H, left:left + W]


BLOCK = 1 << 16


def blockwise(fn, *arrays):
    """fn(*arrays) -> tuple of arrays, for an element-wise fn of same-shaped arrays (an optimizer's
    update of one parameter, the random generator's rounds), evaluated on slices of BLOCK
    elements: the many temporaries of the formula then stay in the CPU cache and reuse the
    allocator's memory, where whole-array temporaries each cost a pass through RAM and fresh
    pages. One thread: sharing the blocks among threads was slower inside a training step
    (docs/architecture.md, "Threads")."""
    shape, n = arrays[0].shape, arrays[0].size
    if n <= BLOCK:
        return fn(*arrays)
    flat = [np.ravel(a) for a in arrays]
    outs = None
    for start in range(0, n, BLOCK):
        part = fn(*(a[start:start + BLOCK] for a in flat))
        if outs is None:
            outs = [np.empty(n, dtype=p.dtype) for p in part]
        for out, p in zip(outs, part):
            out[start:start + BLOCK] = p
    return tuple(out.reshape(shape) for out in outs)


def foreach(fn, columns, whole=False):
    """[fn(*c) for c in columns] for an element-wise fn (an optimizer's update of one parameter,
    c = (p, g, *slots)): parameters smaller than BLOCK are concatenated by dtype and updated by a
    single call, as PyTorch's "foreach" optimizers do (a few calls per step instead of a dozen
    array operations per parameter); larger ones are updated blockwise, or whole where `whole`
    (compiled kernels) and fn's update is one operation (`fn.one_operation`: one compiled pass,
    no temporaries to keep in cache; AdamW's decay adds two whole-array passes, still faster than
    blocks: docs/architecture.md, "Compiled kernels"). Same results."""
    results = [None] * len(columns)
    groups = {}
    for i, column in enumerate(columns):
        if column[0].size > BLOCK:
            results[i] = fn(*column) if whole and getattr(fn, "one_operation", False) else blockwise(fn, *column)
        else:
            groups.setdefault(tuple(a.dtype for a in column), []).append(i)
    for members in groups.values():
        flat = [np.concatenate([columns[i][k] for i in members], axis=None) for k in range(len(columns[members[0]]))]
        for i, part in zip(members, _split(fn(*flat), [columns[i][0] for i in members])):
            results[i] = part
    return results


def _split(flat_outputs, like):
    """The flat outputs cut back into arrays shaped as `like`, in order (views, no copies)."""
    start = 0
    for a in like:
        yield tuple(o[start:start + a.size].reshape(a.shape) for o in flat_outputs)
        start += a.size


def relu_backward(dy, z):
    """portanet.activations' relu_backward as dy times (z > 0): multiplying by a boolean is several
    times faster in NumPy than `where` (a dy of inf or nan where z <= 0 would give nan instead
    of 0; finite ones match exactly)."""
    return np.multiply(dy, z > 0)


def threefry2x32(k0, k1, c0, c1):
    """portanet.random.threefry2x32 with every round written in place (uint32 words wrap, so the
    words are the same): one temporary instead of a new array per operation."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(PARITY))
    x0, x1 = c0 + ks[0], c1 + ks[1]
    shifted = np.empty_like(x1)
    for group in range(5):
        for r in ROTATIONS[group % 2]:
            x0 += x1
            np.left_shift(x1, r, out=shifted)                     # x1 = rotl(x1, r) ^ x0
            x1 >>= 32 - r
            x1 |= shifted
            x1 ^= x0
        x0 += ks[(group + 1) % 3]
        x1 += ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def scatter_add_rows(indices, rows, size):
    """portanet.layers.embedding's scatter-add of rows, with np.add.at (no one-hot matrix)."""
    out = np.zeros((size, rows.shape[1]), dtype=rows.dtype)
    np.add.at(out, indices, rows)
    return out


def compiled_paths(k):
    """Fast paths that run the loops of backends/numba_kernels.py (module k); where a loop takes
    no such input (a layout, or a dtype other than float32 and float64) the NumPy or portable
    version runs instead."""
    def or_portable(kernel, name):
        def update(*args):
            out = kernel(*args)
            return out if out is not None else portable_version(name)(*args)
        update.__name__ = f"compiled_{name}"
        return update

    def compiled_add_kernel_row(d, dx, top, strides):
        (k.add_kernel_row if d.dtype.type in k.FLOATS else add_kernel_row)(d, dx, top, strides)

    def compiled_maxpool2d_backward(cache, dy, pool, strides, pads):
        xpad, y = cache
        if y.dtype.type not in k.FLOATS or dy.dtype != y.dtype:
            return maxpool2d_backward(cache, dy, pool, strides, pads)
        dx = np.zeros((xpad.shape[1], *xpad.shape[2:], xpad.shape[0]), dtype=y.dtype)   # (C, Hp, Wp, N)
        k.maxpool2d_backward(*(a.transpose(1, 2, 3, 0) for a in (xpad, y, dy)), pool, strides, dx)
        (top, bottom), (left, right) = pads
        return dx[:, top:dx.shape[1] - bottom, left:dx.shape[2] - right].transpose(3, 0, 1, 2)

    return {"adam": or_portable(k.adam, "adam"), "rmsprop": or_portable(k.rmsprop, "rmsprop"),
            "maxpool2d_backward": compiled_maxpool2d_backward,
            "conv2d_backward": functools.partial(conv2d_backward, add_row=compiled_add_kernel_row),
            "foreach": functools.partial(foreach, whole=True)}


def make():
    return NumpyBackend()
