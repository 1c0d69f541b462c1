"""How an epoch's batches reach the train step: three strategies, one interface
(docs/architecture.md, "Graph, steps, trainer").

    feed = choose_feed(arrays, dtypes, batch_size, budget, chunked_allowed)
    for work in feed.epoch(order, batch_size):     # Batch(number, arrays, size) or Chunk(first, count, index)
        ...

`arrays` is the tuple (x, y, w) of host data: tuples with one array per input (x) and per
output (y; w, the sample weights, None where an output has none); `dtypes` the same tree of the
dtypes they take on the device.

- `HostBatches`: each batch copied from the host when it is needed (data larger than the
  device-data budget).
- `DeviceBatches`: the whole training set copied to the device once; each batch gathered there.
- `DeviceChunks`: the same data, the full batches of an epoch in about 20 chunks, each run by one
  compiled call of the chunk step (backends whose loops compile: JAX); the last, smaller batch
  (if any) as a Batch.

A Batch's and a Chunk's arrays are already on the device.
"""
import os
from dataclasses import dataclass

from ..backend import get as _backend
from ..errors import invalid
from ..tree import tree_leaves, tree_map
from . import data

CHUNKS_PER_EPOCH = 20  # host round trips per epoch on DeviceChunks, one per progress update


@dataclass
class Batch:
    number: int      # its position in the epoch, for its random key
    arrays: tuple    # (x, y, w) on the device
    size: int


@dataclass
class Chunk:
    first: int       # the number of its first batch
    count: int       # batches it trains on
    index: object    # (per_chunk, batch_size) int32 rows of the device data; rows past count are padding
    arrays: tuple    # the whole data (x, y, w) on the device


def to_device(arrays, dtypes, rows=None, batch=True):
    """The host tree `arrays` (or its rows `rows`) on the device, with the dtypes of `dtypes`: a
    batch (split across the devices of a data-parallel layout), or whole data (replicated)."""
    backend = _backend()
    put = backend.asarray_batch if batch else backend.asarray
    return tree_map(lambda a, dtype: None if a is None else put(
        a if rows is None else a[rows], dtype=getattr(backend.xp, dtype.name)), arrays, dtypes)


class HostBatches:
    """Every batch copied from the host arrays when it is needed."""

    def __init__(self, arrays, dtypes):
        self.arrays, self.dtypes = arrays, dtypes

    def epoch(self, order, batch_size):
        for number, index in enumerate(data.batches(order, batch_size)):
            yield Batch(number, to_device(self.arrays, self.dtypes, index), len(index))


class DeviceBatches:
    """The training data copied to the device once; every batch gathered there."""

    def __init__(self, arrays, dtypes):
        self.arrays = to_device(arrays, dtypes, batch=False)

    def batch(self, number, index):
        backend = _backend()
        rows = backend.asarray(index)
        return Batch(number, tree_map(lambda a: None if a is None else backend.xp.take(a, rows, axis=0), self.arrays),
                     len(index))

    def epoch(self, order, batch_size):
        for number, index in enumerate(data.batches(order, batch_size)):
            yield self.batch(number, index)


class DeviceChunks(DeviceBatches):
    """DeviceBatches whose full batches run as compiled chunks of the epoch."""

    def epoch(self, order, batch_size):
        backend = _backend()
        steps = len(order) // batch_size
        per_chunk = -(-steps // CHUNKS_PER_EPOCH)
        index = data.batch_matrix(order, batch_size, steps, per_chunk)  # (chunks, per_chunk, batch)
        for c in range(index.shape[0]):
            yield Chunk(c * per_chunk, min(per_chunk, steps - c * per_chunk), backend.asarray(index[c]), self.arrays)
        if len(order) % batch_size:
            yield self.batch(steps, order[steps * batch_size:])


def budget_from_environment():
    """PORTANET_DEVICE_DATA_BUDGET: bytes of training data that go to the device at once (default 2 GiB)."""
    value = os.environ.get("PORTANET_DEVICE_DATA_BUDGET", str(2 ** 31))
    if not value.isdigit():
        raise invalid("PORTANET_DEVICE_DATA_BUDGET", "a number of bytes (a non-negative integer)", value)
    return int(value)


def choose_feed(arrays, dtypes, batch_size, budget, chunks):
    """The feed for training data `arrays`: on the device when it fits in `budget` bytes (as
    floats), in compiled chunks where `chunks` allows (the backend compiles loops, the steps are
    compiled, no callback needs every batch) and there is a full batch."""
    backend = _backend()
    bits = backend.xp.finfo(backend.float_dtype()).bits
    leaves = [a for a in tree_leaves(arrays) if a is not None]
    if sum(a.size for a in leaves) * bits // 8 > budget or backend.process_count > 1:
        return HostBatches(arrays, dtypes)   # (several processes: each sends its part of each batch)
    if chunks and backend.compiled_loops and len(leaves[0]) >= batch_size:
        return DeviceChunks(arrays, dtypes)
    return DeviceBatches(arrays, dtypes)
