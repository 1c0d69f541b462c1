"""The JAX backend: XLA on CPU or GPU; the training step is compiled with `jax.jit`; data
parallelism over a device mesh (docs/architecture.md, "Distribution")."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from portanet.backend import Backend
from portanet.errors import InvalidArgumentError, invalid


class JaxBackend(Backend):
    name = "jax"
    xp = jnp
    version = jax.__version__

    def __init__(self):
        # Parity tests compare float32 results across backends: no reduced-precision matmuls.
        jax.config.update("jax_default_matmul_precision", "float32")
        # XLA's own convolution runs about 4x slower than portanet's im2col GEMMs inside the
        # compiled epoch loop on CPU (and no faster outside it): the convolution stays portable.
        self.fast = {"erf": jax.lax.erf, "scatter_add_rows": scatter_add_rows}

    @property
    def device(self):
        """This process's first device (looked up when first needed: a multi-process run must
        join its peers, `initialize_distributed`, before JAX lists its devices)."""
        return jax.local_devices()[0]

    @property
    def process_index(self):
        return jax.process_index() if self.layout is not None else 0

    @property
    def process_count(self):
        return jax.process_count() if self.layout is not None else 1

    def _host(self, x, dtype):
        if not isinstance(x, (jax.Array, np.ndarray)) and hasattr(x, "__dlpack__"):
            try:
                x = jnp.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError):
                x = np.asarray(x)
        if isinstance(x, (list, tuple)) or np.isscalar(x):
            x = np.asarray(x)
        if dtype is not None and dtype == jnp.float64:
            self.enable_float64()
        return x

    def asarray(self, x, dtype=None):
        """On this device, or replicated on every device of the layout."""
        x = self._host(x, dtype)
        if self.layout is None:
            return jax.device_put(jnp.asarray(x, dtype=dtype), self.device)
        if isinstance(x, jax.Array) and x.sharding == self.layout.replicated:
            return x.astype(dtype) if dtype is not None else x
        return self.layout.put(np.asarray(x, dtype=None if dtype is None else np.dtype(dtype)), self.layout.replicated)

    def asarray_batch(self, x, dtype=None):
        if self.layout is None or x.shape[0] % self.layout.size:
            return self.asarray(x, dtype)   # a batch the devices cannot share evenly: replicated
        x = self._host(x, dtype)
        return self.layout.put(np.asarray(x, dtype=None if dtype is None else np.dtype(dtype)), self.layout.batch)

    def constrain_batch(self, tree):
        if self.layout is None:
            return tree
        return jax.tree_util.tree_map(
            lambda a: jax.lax.with_sharding_constraint(a, self.layout.batch) if a.ndim and a.shape[0] % self.layout.size == 0
            else a, tree)

    def to_numpy(self, x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:  # other processes hold parts
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    def list_devices(self):
        return [f"{d.platform}:{d.id}" for d in jax.devices()]

    def barrier(self, name):
        if self.process_count > 1:
            multihost_utils.sync_global_devices(name)

    def data_parallel(self, devices=None):
        return Layout(devices)

    def initialize_distributed(self, coordinator_address=None, num_processes=None, process_id=None):
        """jax.distributed.initialize, with the gloo collectives for CPU devices (asking which
        devices there are would start XLA too early). Arguments left out come from the environment
        (JAX reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID and the cluster
        schedulers' variables)."""
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(coordinator_address, num_processes, process_id)
        except RuntimeError as error:
            raise InvalidArgumentError(
                f"portanet.distribution.initialize must run before anything uses a JAX device (call it "
                f"right after importing portanet). JAX said: {error}") from error

    def jit(self, fn, **kwargs):
        return jax.jit(fn, **kwargs)

    compiled_loops = True

    def loop(self, body, count, carry):
        return jax.lax.fori_loop(0, count, body, carry)

    def is_out_of_memory(self, error):
        return isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error)  # XlaRuntimeError

    def enable_float64(self):
        jax.config.update("jax_enable_x64", True)


class Layout:
    """A one-axis mesh ("batch") over `devices`: `replicated` and `batch` (split along the first
    axis) shardings, and how host data becomes a global array of them."""

    def __init__(self, devices=None):
        known = {f"{d.platform}:{d.id}": d for d in jax.devices()}
        if devices is None:
            chosen = jax.devices()
        else:
            unknown = [d for d in devices if str(d) not in known]
            if unknown:
                raise invalid("devices", f"names from list_devices(): {sorted(known)}", devices)
            chosen = [known[str(d)] for d in devices]
        self.devices = chosen
        self.size = len(chosen)
        self.mesh = Mesh(np.array(chosen), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch = NamedSharding(self.mesh, PartitionSpec("batch"))

    def put(self, x, sharding):
        """The global array of `sharding` from host data every process holds in full (one
        process: device_put; several: each sends only its own part)."""
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if sharding is self.replicated:
            return jax.make_array_from_process_local_data(sharding, x, x.shape)
        share = x.shape[0] // jax.process_count()
        local = x[jax.process_index() * share:(jax.process_index() + 1) * share]
        return jax.make_array_from_process_local_data(sharding, local, x.shape)


def scatter_add_rows(indices, rows, size):
    """portanet.layers.embedding's scatter-add of rows as an XLA scatter (no one-hot matrix)."""
    return jnp.zeros((size, rows.shape[1]), dtype=rows.dtype).at[indices].add(rows)


def make():
    return JaxBackend()
