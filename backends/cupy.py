"""The CuPy backend: NVIDIA GPUs through CUDA. TF32 is off unless CUPY_TF32=1 is set."""
import os

os.environ.setdefault("CUPY_TF32", "0")

import array_api_compat  # noqa: E402
import cupy as cp  # noqa: E402
import numpy as np  # noqa: E402

from portanet.backend import Backend  # noqa: E402
from portanet.errors import BackendUnavailableError  # noqa: E402


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
        self.xp = array_api_compat.array_namespace(cp.empty(0))

    def asarray(self, x, dtype=None):
        if not isinstance(x, (cp.ndarray, np.ndarray)) and hasattr(x, "__dlpack__"):
            try:
                x = cp.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError, ValueError):  # a host-only array
                x = np.asarray(x)
        return cp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return cp.asnumpy(x)

    def is_out_of_memory(self, error):
        # cupy.cuda.memory.OutOfMemoryError is a MemoryError; cuBLAS/cuDNN report failed allocations
        return isinstance(error, MemoryError) or "ALLOC_FAILED" in str(error)


def make():
    return CupyBackend()
