"""Data-parallel training on several devices and several machines, named as `keras.distribution`
names things, on JAX's runtime (docs/architecture.md, "Distribution").

    import portanet as pn
    pn.distribution.initialize()                      # several processes: before anything else
    pn.distribution.set_distribution(pn.distribution.DataParallel())
    model.fit(x, y, batch_size=256)                   # the global batch, split across the devices

The parameters and the optimizer state are replicated on every device; each global batch is split
along its first axis; the same pure step runs, compiled once, and XLA sums the gradients across
the devices. `batch_size` is the global batch: it must be divisible by the number of devices.
In a run of several processes each process sends only its own part of every batch to its devices,
and only process 0 writes model files.
"""
from .backend import get as _backend
from .errors import InvalidTypeError, invalid

_current = None


class DataParallel:
    """Data parallelism over `devices` (names from `list_devices()`; None: every device of every
    process)."""

    def __init__(self, devices: list | None = None):
        if devices is not None and (not isinstance(devices, (list, tuple)) or not devices):
            raise invalid("devices", "a non-empty list of device names (list_devices()) or None", devices,
                          InvalidTypeError)
        self.devices = None if devices is None else [str(d) for d in devices]
        self.layout = _backend().data_parallel(self.devices)   # the backend's mesh and shardings

    @property
    def num_devices(self) -> int:
        return self.layout.size

    def check_batch_size(self, batch_size, argument="batch_size"):
        if batch_size % self.num_devices:
            raise invalid(argument, f"a global batch size divisible by the number of devices ({self.num_devices}), "
                          f"e.g. {max(1, batch_size // self.num_devices) * self.num_devices}", batch_size)
        return batch_size

    def __repr__(self):
        return f"<DataParallel over {self.num_devices} devices>"


def set_distribution(value: DataParallel | None) -> None:
    """Train, evaluate and predict under `value` from now on (None: on one device again)."""
    global _current
    if value is not None and not isinstance(value, DataParallel):
        raise invalid("value", "a portanet.distribution.DataParallel or None", value, InvalidTypeError)
    _backend().set_layout(None if value is None else value.layout)
    _current = value


def distribution() -> DataParallel | None:
    """The current distribution (None: one device), if it belongs to the current backend."""
    if _current is not None and _backend().layout is not _current.layout:
        return None
    return _current


def list_devices(device_type: str | None = None) -> list[str]:
    """The devices of every process ("cpu:0", "cuda:3", ...), or those of `device_type`."""
    devices = _backend().list_devices()
    return [d for d in devices if device_type is None or d.split(":")[0] == device_type]


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join the processes of a multi-process run (jax.distributed.initialize; the arguments left
    out come from the environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a
    cluster scheduler's). Call it before anything else uses a device."""
    if num_processes is not None and (isinstance(num_processes, bool) or not isinstance(num_processes, int)
                                      or num_processes < 1):
        raise invalid("num_processes", "a positive int", num_processes)
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise invalid("process_id", f"an int in [0, {num_processes})", process_id)
    _backend().initialize_distributed(coordinator_address, num_processes, process_id)


def process_index() -> int:
    """This process's number in a multi-process run (0 in a single process)."""
    return _backend().process_index
