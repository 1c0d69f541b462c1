"""The NumPy backend (default): CPU, float32 by default, no compilation."""
import array_api_compat
import numpy as np

from portanet.backend import Backend


class NumpyBackend(Backend):
    name = "numpy"
    device = "cpu"
    version = np.__version__

    def __init__(self):
        self.xp = array_api_compat.array_namespace(np.empty(0))

    def asarray(self, x, dtype=None):
        if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack__"):
            try:
                x = np.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError):  # e.g. a tensor on another device
                x = np.asarray(x)
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x)


def make():
    return NumpyBackend()
