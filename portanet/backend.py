"""Runtime selection of the array backend.

    PORTANET_BACKEND=jax python train.py          # chosen at import (default: numpy)
    portanet.backend.set("strict")               # switched inside one process
    with portanet.backend.use("jax"): ...         # switched for a block, restored afterwards

Each backend lives in ``backends/<name>.py`` (installed as ``portanet.backends.<name>``), the only
modules that import a concrete array library. Everything else asks ``get().xp`` for its namespace,
and ``get().op(name)`` for an operation a backend may replace with a fast path (the table of them
is in docs/architecture.md, "Backends and fast paths").
"""
import contextlib
import importlib
import importlib.util
import os
import types

from .errors import BackendUnavailableError, InvalidArgumentError, invalid
from .tree import tree_map

# name -> (importable library that must be present, pip extra that installs it)
KNOWN = {
    "numpy": ("numpy", "portanet"),
    "jax": ("jax", "portanet[jax]"),
    "cupy": ("cupy", "portanet[cupy]"),
    "strict": ("array_api_strict", "portanet[strict]"),
    "torch": ("torch", "portanet[torch]"),
}
GPU_ONLY = ("cupy",)
FLOATX = ("float32", "float64")


_PORTABLE = {}          # operation name -> its portable implementation
_fast_enabled = True


def portable_op(name):
    """Decorator: `fn` is the portable implementation of operation `name`. A backend may replace
    it with a fast path of the same signature and results (its `fast` dict, parity-tested)."""
    def register(fn):
        _PORTABLE[name] = fn
        return fn
    return register


def portable_version(name):
    """The portable implementation of operation `name` (a fast path's fallback)."""
    return _PORTABLE[name]


def namespace_copy(base, name, **replaced):
    """A module named `name` holding every function of array namespace `base`, the ones in
    `replaced` swapped for a backend's own (backends/cupy.py, backends/torch.py)."""
    identity = {"__name__", "__doc__", "__package__", "__loader__", "__spec__", "__path__", "__file__", "__cached__"}
    xp = types.ModuleType(name, base.__doc__)
    xp.__dict__.update({k: v for k, v in vars(base).items() if k not in identity})
    xp.__dict__.update(replaced)
    return xp


@contextlib.contextmanager
def portable():
    """Only the portable implementations within the block (no fast paths): the parity tests
    compare the two."""
    global _fast_enabled
    previous, _fast_enabled = _fast_enabled, False
    try:
        yield
    finally:
        _fast_enabled = previous


class Backend:
    """What a backend provides (docs/architecture.md, "Backends and fast paths"). Subclasses fill in
    the library-specific parts."""

    name = None
    xp = None
    device = None
    version = None
    has_float64 = True

    def asarray(self, x, dtype=None):
        """Host data (NumPy, lists) or any DLPack-capable array -> array on this backend's device."""
        raise NotImplementedError

    def to_numpy(self, x):
        """Array of this backend -> NumPy array on the host."""
        raise NotImplementedError

    def jit(self, fn, **kwargs):
        """Compile `fn` where the backend can (JAX: XLA; CuPy: a CUDA graph); identity elsewhere.
        `donate_argnums`, as in `jax.jit`: those arguments may be overwritten by the outputs."""
        return fn

    # True where `loop` compiles (JAX): the model then runs many steps per call.
    compiled_loops = False

    def loop(self, body, count, carry):
        """carry = body(i, carry) for i in 0..count-1 (count: a 0-d integer array). JAX runs it as
        one `lax.fori_loop` inside the compiled step; elsewhere it is a Python loop."""
        for i in range(int(self.to_numpy(count))):
            carry = body(i, carry)
        return carry

    def quiet(self):
        """Context manager silencing floating-point warnings (overflow, invalid) of the array
        library while a step runs; the training loop reports non-finite losses itself, once."""
        return contextlib.nullcontext()

    def is_out_of_memory(self, error):
        """True where `error`, raised by a step, says the device ran out of memory."""
        return isinstance(error, MemoryError)

    def enable_float64(self):
        """Called before float64 is used; raises where the device has no float64."""
        if not self.has_float64:
            raise InvalidArgumentError(
                f"The {self.name} backend on device {self.device} has no float64. "
                f"Expected floatx='float32'. Received: floatx='float64'")

    def float_dtype(self):
        """The array dtype for `floatx()`."""
        return getattr(self.xp, _floatx)

    # ----- data parallelism (docs/architecture.md, "Distribution") ---------------------------------
    layout = None            # the current data-parallel layout (set_layout), or None: one device
    process_index, process_count = 0, 1

    def list_devices(self):
        """The devices this backend can use (names)."""
        return [str(self.device)]

    def data_parallel(self, devices=None):
        """A layout over `devices` (None: every local device): batches split along their first
        axis, everything else replicated. Only the jax backend has one."""
        raise InvalidArgumentError(
            f"Data-parallel training (portanet.distribution) runs on the jax backend (JAX's mesh and "
            f"XLA's collectives). Expected PORTANET_BACKEND=jax. Received: backend='{self.name}'")

    def set_layout(self, layout):
        self.layout = layout

    def initialize_distributed(self, coordinator_address=None, num_processes=None, process_id=None):
        """Join this process to the others of a multi-process run (jax only)."""
        self.data_parallel()

    def thread_report(self):
        """How many threads the backend computes with, and why (None where it does not choose)."""
        return None

    def memory_report(self):
        """How the backend set up host memory allocation, if it did (None where it does not)."""
        return None

    def kernel_report(self):
        """Which compiled kernels the backend's fast paths use, if it has any (None where not)."""
        return None

    def barrier(self, name):
        """Wait until every process of a multi-process run reaches this point (one process: return)."""

    def asarray_batch(self, x, dtype=None):
        """A batch (host data, examples along axis 0) on the device: under a layout, split across
        the devices (each process sending only its part); otherwise as `asarray`."""
        return self.asarray(x, dtype=dtype)

    def constrain_batch(self, tree):
        """Inside a step: the batch arrays of `tree` split across the layout's devices (identity
        without a layout)."""
        return tree

    # The integer dtype of random-number words (portanet.random): uint32, or a wider type whose
    # values are masked with `word_mask` where the library's uint32 lacks arithmetic
    word_mask = None

    @property
    def word_dtype(self):
        return self.xp.uint32

    def select_device(self, device):
        """Use `device` (a name such as "cpu", "cuda:1"); backends with one device accept only it."""
        if device is not None and str(device) != str(self.device):
            raise invalid("device", f"the {self.name} backend's device ({self.device})", device)

    # Fast paths: operation name -> a replacement for its portable implementation
    fast = {}

    def op(self, name):
        """The implementation of operation `name` here: the backend's fast path (outside
        `portable()`), else the portable one."""
        fast = self.fast.get(name) if _fast_enabled else None
        return fast if fast is not None else _PORTABLE[name]

    def __repr__(self):
        return f"<portanet backend {self.name!r} on {self.device}>"


_loaded = {}
_current = None
_floatx = "float32"


def _check_name(name):
    if name not in KNOWN:
        raise invalid("backend", f"one of {sorted(KNOWN)}", name)


def installed(name: str) -> bool:
    """True where the library behind backend `name` can be imported."""
    _check_name(name)
    return importlib.util.find_spec(KNOWN[name][0]) is not None


def available() -> list[str]:
    """Names of the backends whose library is installed (a GPU backend may still lack a GPU)."""
    return [name for name in KNOWN if installed(name)]


def load(name: str) -> Backend:
    """The Backend object for `name`, imported on first use."""
    _check_name(name)
    if name not in _loaded:
        library, extra = KNOWN[name]
        if not installed(name):
            raise BackendUnavailableError(
                f"The {name} backend needs the `{library}` package, which is not installed. "
                f'Install it with: pip install "{extra}"')
        module = importlib.import_module(f"portanet.backends.{name}")
        _loaded[name] = module.make()
    return _loaded[name]


def get() -> Backend:
    """The current Backend (the first call reads PORTANET_BACKEND and PORTANET_FLOATX; a bad value
    is reported then, with the valid ones)."""
    if _current is None:
        value = os.environ.get("PORTANET_FLOATX", "float32") or "float32"
        if value not in FLOATX:
            raise invalid("PORTANET_FLOATX", f"one of {list(FLOATX)}", value)
        name = os.environ.get("PORTANET_BACKEND", "numpy") or "numpy"
        if name not in KNOWN:
            raise invalid("PORTANET_BACKEND", f"one of {sorted(KNOWN)}", name)
        set(name)
    return _current


def set(name: str, device: str | None = None) -> Backend:
    """Make `name` the current backend (on `device`, where it has several: "cpu", "cuda:1",
    "mps"); returns the Backend."""
    global _current
    backend = load(name)
    backend.select_device(device)
    if _floatx == "float64":
        backend.enable_float64()
    _current = backend
    return backend


def place(tree):
    """Every array of `tree` on the current backend's device (JAX: committed, so jit never retraces)."""
    return tree_map(get().asarray, tree)


def transfer(tree, source):
    """`tree` (nested dicts, lists, tuples) with every array, held by backend `source` (a name),
    copied to the current backend."""
    old, new = load(source), get()
    return tree_map(lambda a: new.asarray(old.to_numpy(a)) if hasattr(a, "shape") else a, tree)


@portable_op("blockwise")
def _blockwise(fn, *arrays):
    """fn(*arrays) for an element-wise fn of same-shaped arrays (NumPy: evaluated on cache-sized blocks)."""
    return fn(*arrays)


@portable_op("foreach")
def _foreach(fn, columns):
    """[fn(*c) for c in columns]: the optimizers' per-parameter update (NumPy: small parameters together)."""
    return [fn(*column) for column in columns]


def floatx() -> str:
    """The default float dtype name: "float32" (default) or "float64"."""
    return _floatx


def set_floatx(value: str) -> None:
    """Set the default float dtype ("float32" or "float64") for every backend."""
    global _floatx
    if value not in FLOATX:
        raise invalid("floatx", f"one of {list(FLOATX)}", value)
    if value == "float64":
        get().enable_float64()
    _floatx = value


@contextlib.contextmanager
def use(name: str | None = None, floatx: str | None = None):
    """Context manager: switch backend (and optionally floatx) for a block; restore on exit."""
    previous, previous_floatx = get(), _floatx
    try:
        if floatx is not None:
            _set_floatx_unchecked(floatx)
        yield set(name if name is not None else previous.name)
    finally:
        global _current
        _current = previous
        _set_floatx_unchecked(previous_floatx)


def _set_floatx_unchecked(value):
    global _floatx
    if value not in FLOATX:
        raise invalid("floatx", f"one of {list(FLOATX)}", value)
    _floatx = value


def _init_from_environment():
    """At import: floatx and the backend from the environment. A bad value does not stop the
    import (no traceback through `import portanet`): `get()` reports it at first use, and
    `python -m portanet info` in its table."""
    global _floatx
    value = os.environ.get("PORTANET_FLOATX", "float32") or "float32"
    if value in FLOATX:
        _floatx = value
    try:
        get()
    except (InvalidArgumentError, BackendUnavailableError):
        pass
