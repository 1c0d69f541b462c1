"""Runtime selection of the array backend.

    PORTANET_BACKEND=jax python train.py          # chosen at import (default: numpy)
    portanet.backend.set("strict")               # switched inside one process
    with portanet.backend.use("jax"): ...         # switched for a block, restored afterwards

Each backend lives in ``backends/<name>.py`` (installed as ``portanet.backends.<name>``), the only
modules that import a concrete array library. Everything else asks ``get().xp`` for its namespace.
"""
import contextlib
import importlib
import importlib.util
import os

from .errors import BackendUnavailableError, InvalidArgumentError, invalid

# name -> (importable library that must be present, pip extra that installs it)
KNOWN = {
    "numpy": ("numpy", "portanet"),
    "jax": ("jax", "portanet[jax]"),
    "cupy": ("cupy", "portanet[cupy]"),
    "strict": ("array_api_strict", "portanet[strict]"),
}
GPU_ONLY = ("cupy",)
FLOATX = ("float32", "float64")


class Backend:
    """What a backend provides (DESIGN.md §2). Subclasses fill in the library-specific parts."""

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

    # Optional fast paths (e.g. "im2col"), each tested for parity with the portable code.
    fast = {}

    def __repr__(self):
        return f"<portanet backend {self.name!r} on {self.device}>"


_loaded = {}
_current = None
_floatx = "float32"


def _check_name(name):
    if name not in KNOWN:
        raise invalid("backend", f"one of {sorted(KNOWN)}", name)


def installed(name):
    """True where the library behind backend `name` can be imported."""
    _check_name(name)
    return importlib.util.find_spec(KNOWN[name][0]) is not None


def available():
    """Names of the backends whose library is installed (a GPU backend may still lack a GPU)."""
    return [name for name in KNOWN if installed(name)]


def load(name):
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


def get():
    """The current Backend."""
    if _current is None:
        set(os.environ.get("PORTANET_BACKEND", "numpy") or "numpy")
    return _current


def set(name):
    """Make `name` the current backend; returns the Backend."""
    global _current
    backend = load(name)
    if _floatx == "float64":
        backend.enable_float64()
    _current = backend
    return backend


def floatx():
    """The default float dtype name: "float32" (default) or "float64"."""
    return _floatx


def set_floatx(value):
    """Set the default float dtype ("float32" or "float64") for every backend."""
    global _floatx
    if value not in FLOATX:
        raise invalid("floatx", f"one of {list(FLOATX)}", value)
    if value == "float64":
        get().enable_float64()
    _floatx = value


@contextlib.contextmanager
def use(name=None, floatx=None):
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
    global _floatx
    value = os.environ.get("PORTANET_FLOATX", "float32") or "float32"
    if value not in FLOATX:
        raise invalid("PORTANET_FLOATX", f"one of {list(FLOATX)}", value)
    _floatx = value
    get()
