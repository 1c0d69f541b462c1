"""Batches from a stream: a `portanet.data.Sequence` (Keras' PyDataset), a generator or another
iterable of batches (docs/architecture.md, "Streams").

    stream = Stream(source, convert, steps=None, shuffle=False, workers=None, max_queue_size=None)
    for number, arrays in stream.epoch(epoch, seed):    # arrays: host (x, y, w), checked
        ...

`convert(item)` turns one item into host arrays and checks them; an error names the batch and the
epoch. With several workers, threads read (and convert) batches ahead, at most `max_queue_size`
of them, while the device trains: a Sequence's batches by index, in order, on `workers` threads;
an iterator's on one thread (a generator cannot be read by two), never past the epoch's last step
(what it read ahead would be lost to the next epoch).

As in Keras, with `steps` (steps_per_epoch) an iterator is read on across epochs; without, each
epoch reads the iterable to its end (iter() again). A stream that ends before `steps` batches,
or gives no batch at all, is an error: the weights trained so far stay in the model.
"""
import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from ..data import Sequence
from ..errors import InvalidArgumentError, PortanetError, invalid
from . import data


def is_stream(value):
    """A Sequence, an iterator or generator, or another iterable that is not array data."""
    if isinstance(value, Sequence):
        return True
    if isinstance(value, (list, tuple, dict, str, bytes)) or any(
            hasattr(value, a) for a in ("__array__", "__dlpack__", "shape")):
        return False
    return hasattr(value, "__iter__") or hasattr(value, "__next__")


class Stream:
    """One epoch at a time, the batches of `source`, converted and checked by `convert`."""

    def __init__(self, source, convert, steps=None, shuffle=False, workers=None, max_queue_size=None,
                 argument="x"):
        self.source, self.convert, self.steps, self.shuffle, self.argument = source, convert, steps, shuffle, argument
        self.sequence = isinstance(source, Sequence)
        # a Sequence's own settings (also where a subclass did not call Sequence.__init__, as Keras allows)
        self.workers = workers or getattr(source, "workers", 1)
        self.max_queue_size = max_queue_size or getattr(source, "max_queue_size", 10)
        self.length = source.num_batches if self.sequence else None
        if self.sequence and self.length is None and steps is None:
            raise invalid("steps_per_epoch", f"a number of batches for {type(source).__name__}, which has no "
                          f"__len__", steps)
        self.iterator = None

    @property
    def batches_per_epoch(self):
        """Batches per epoch, or None where only the end of the stream tells."""
        return self.steps or self.length

    def epoch(self, epoch, seed=0):
        """(number, host arrays) of each batch of one epoch."""
        if self.sequence:
            count = self.steps or self.length
            if self.length is not None and count > self.length:
                raise self._ran_out(epoch, self.length)
            order = data.epoch_order(self.length, self.shuffle, seed, epoch)[:count] if self.length else range(count)
            items = self._read_sequence([int(i) for i in order])
        else:
            if self.iterator is None or self.steps is None:
                self.iterator = iter(self.source)
            items = self._read_iterator(self.iterator, self.steps)
        number = -1
        for number, item in enumerate(items):
            if isinstance(item, BaseException):
                raise self._located(item, number, epoch)
            yield number, item
        if self.steps is not None and number + 1 < self.steps or number < 0:
            self.iterator = None
            raise self._ran_out(epoch, number + 1)
        if self.sequence:
            self.source.on_epoch_end()

    def _convert(self, item):
        try:
            return self.convert(item)
        except PortanetError as error:
            return error

    def _read_sequence(self, indices):
        if self.workers == 1:
            for i in indices:
                yield self._convert(self.source[i])
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="portanet-batches") as pool:
            pending = collections.deque()
            try:
                for i in indices:
                    pending.append(pool.submit(lambda i=i: self._convert(self.source[i])))
                    if len(pending) >= self.max_queue_size:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _read_iterator(self, iterator, steps):
        if self.workers == 1:
            for count, item in enumerate(iterator):
                yield self._convert(item)
                if steps is not None and count + 1 >= steps:
                    return
            return
        ahead, stop, done = queue.Queue(self.max_queue_size), threading.Event(), object()

        def read():
            try:
                for count, item in enumerate(iterator):
                    converted = self._convert(item)
                    while not stop.is_set():
                        try:
                            ahead.put(converted, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set() or isinstance(converted, BaseException) or (
                            steps is not None and count + 1 >= steps):
                        break
            except Exception as error:  # the generator itself failed: re-raised in the training thread
                ahead.put(error)
            ahead.put(done)

        reader = threading.Thread(target=read, name="portanet-batches", daemon=True)
        reader.start()
        try:
            while (item := ahead.get()) is not done:
                if isinstance(item, Exception) and not isinstance(item, PortanetError):
                    raise item
                yield item
        finally:
            stop.set()

    def _located(self, error, number, epoch):
        return type(error)(f"In batch {number} (epoch {epoch + 1}) of `{self.argument}`: {error}")

    def _ran_out(self, epoch, got):
        source = "a Sequence" if self.sequence else "a generator" if hasattr(self.source, "__next__") else "an iterable"
        expected = (f"{self.steps} batches per epoch (steps_per_epoch={self.steps})" if self.steps
                    else f"{self.length} batches per epoch (len of the Sequence)" if self.length else "at least one batch")
        advice = " Give a generator that loops forever (while True: ...) with steps_per_epoch, or pass " \
                 "a re-iterable (a list of batches, a Sequence)." if not self.sequence else ""
        return InvalidArgumentError(
            f"Invalid value for `{self.argument}`. Expected {expected}. Received: {source} that ran out after "
            f"{got} batches in epoch {epoch + 1}; the weights trained so far are kept.{advice}")


def split_item(item, targets, argument):
    """(x, y, sample_weight) of a stream's item: (x, y) or (x, y, sample_weight); without
    `targets` (predict) also x alone or (x,)."""
    if isinstance(item, tuple) and (len(item) in (2, 3) or (not targets and len(item) == 1)):
        return (*item, *([None] * (3 - len(item))))
    if not targets:
        return item, None, None
    received = f"a tuple of {len(item)}" if isinstance(item, tuple) else type(item).__name__
    raise invalid(argument, "batches as tuples (x, y) or (x, y, sample_weight)", received)
