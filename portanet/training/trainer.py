"""The host loop of fit, evaluate and predict (docs/architecture.md, "Graph, steps, trainer").

It feeds batches to the model's steps and keeps the device state (parameters, optimizer state,
running totals) between them; it synchronises with the host once per progress update, and once
per batch only when a callback asks for every batch's logs. Arguments arrive validated (the model
checks them before anything changes).
"""
import contextlib
import math
import sys
import time
import warnings

from tqdm.auto import tqdm

from .. import callbacks as callbacks_module, random
from ..backend import floatx, get as _backend, place
from ..errors import DeviceMemoryError
from ..tree import tree_map
from . import data
from .feeding import Batch, Chunk, budget_from_environment, choose_feed, to_device
from .heads import output_losses
from .streams import Stream


class Trainer:
    """The loops of one model; `model` is read for its graph, heads, steps, optimizer, training
    state and settings (`jit_compile`, `device_data_budget`).

    Data arrives as host arrays (x, y, w) (tuples per input and per output, checked) or as a
    Stream (training/streams.py) that yields them batch by batch."""

    def __init__(self, model):
        self.model = model

    def _init_optimizer(self):
        model = self.model
        trainable = model.graph.trainable_params()
        state = model.optimizer.init(trainable) if model.opt_state is None else model.optimizer.extend(
            model.opt_state, trainable)
        if state is not model.opt_state:  # new arrays: placed on the device (JAX: committed)
            model.opt_state = place(state)

    def _batches(self, source, batch_size, epoch=0, shuffle=False, seed=0):
        """Batches (on the device) of host arrays or a Stream, for evaluate and predict."""
        heads = self.model.heads
        if isinstance(source, Stream):
            for number, arrays in source.epoch(epoch, seed):
                yield Batch(number, to_device(arrays, data.dtypes(arrays, heads, floatx())), len(arrays[0][0]))
            return
        dtypes = data.dtypes(source, heads, floatx())
        for number, index in enumerate(data.batches(data.epoch_order(len(source[0][0]), shuffle, seed, epoch),
                                                    batch_size)):
            yield Batch(number, to_device(source, dtypes, index), len(index))

    def fit(self, train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list, steps_per_epoch=None,
            validation_batch_size=None, validation_freq=1):
        """Train on `train` (host arrays or a Stream) for epochs initial_epoch..epochs-1 (or from
        where a callback restored training), validating on `val` every `validation_freq` epochs;
        returns the History. With arrays, `steps_per_epoch` caps the batches of an epoch."""
        model, backend = self.model, _backend()
        keep_previous = callback_list.wants("train_batch")  # per-batch logs: no donated arguments
        feed = None if isinstance(train, Stream) else choose_feed(
            train, data.dtypes(train, model.heads, floatx()), batch_size,
            budget_from_environment() if model.device_data_budget is None else model.device_data_budget,
            chunks=model.jit_compile and not keep_previous)
        model.stop_training = False
        callback_list.call("on_train_begin", {})
        self._init_optimizer()  # after on_train_begin: a callback may have restored the optimizer state
        key = random.key(seed)
        logs = {}
        try:
            with backend.quiet():  # overflow is reported once, below, not as a wall of warnings
                for epoch in range(callback_list.start_epoch(initial_epoch), epochs):
                    callback_list.call("on_epoch_begin", epoch, {})
                    started = time.perf_counter()
                    progress = callback_list.progress(epoch)
                    epoch_key = random.fold_in(key, epoch) if any(layer.needs_key for layer in model.graph.layers) else None
                    if feed is None:
                        work = self._batches(train, batch_size, epoch, shuffle, seed)
                    else:
                        order = data.epoch_order(len(train[0][0]), shuffle, seed, epoch)
                        work = feed.epoch(order if steps_per_epoch is None else order[:steps_per_epoch * batch_size],
                                          batch_size)
                    logs = self._epoch(work, epoch_key, progress, callback_list, keep_previous)
                    if val is not None and (epoch + 1) % validation_freq == 0:
                        logs.update({f"val_{k}": v for k, v in self.evaluate(
                            val, validation_batch_size or batch_size, callback_list).items()})
                    progress.close(logs, time.perf_counter() - started)
                    self._warn_if_not_finite(logs["loss"], epoch, callback_list)
                    model.initial_epoch = epoch + 1
                    callback_list.call("on_epoch_end", epoch, logs)
                    if model.stop_training:
                        break
        finally:
            model.history = callback_list.history
        callback_list.call("on_train_end", logs)
        return model.history

    def _epoch(self, work, key, progress, callback_list, keep_previous):
        """One epoch's steps; returns its logs."""
        model, backend = self.model, _backend()
        xp = backend.xp
        train = model.steps.get("train", donate=not keep_previous)
        params, opt_state, totals = model.graph.params, model.opt_state, model.steps.zero_totals()
        for item in work:
            if isinstance(item, Chunk):
                first = backend.asarray(item.first, dtype=xp.uint32) if key is not None else None
                params, opt_state, totals = model.steps.get("chunk")(
                    params, opt_state, totals, *item.arrays, item.index,
                    backend.asarray(item.count, dtype=xp.int32), key, first)
                model.graph.params, model.opt_state = params, opt_state
                if progress.bar is not None:
                    progress.update(item.first + item.count, self.logs(totals))
                continue
            callback_list.call_batch("train", "begin", item.number, {})
            number = backend.asarray(item.number, dtype=xp.uint32) if key is not None else None
            before = (params, opt_state) if keep_previous else None
            params, opt_state, totals = train(params, opt_state, totals, *item.arrays, key, number)
            model.graph.params, model.opt_state = params, opt_state
            batch_logs = self.logs(totals) if keep_previous else {}
            if progress.due(item.number):
                progress.update(item.number + 1, batch_logs or self.logs(totals))
            callback_list.call_batch("train", "end", item.number, batch_logs)
            if model.stop_training:
                if before is not None and not math.isfinite(batch_logs["loss"]):
                    model.graph.params, model.opt_state = before  # keep the last finite weights
                break
        return self.logs(totals)

    def train_batch(self, arrays):
        """One train step on host arrays (x, y, w); the batch's logs (train_on_batch)."""
        model, backend = self.model, _backend()
        self._init_optimizer()
        batch = next(self._batches(arrays, len(arrays[0][0])))
        key = number = None
        if any(layer.needs_key for layer in model.graph.layers):  # each call draws its own dropout masks
            key = random.fold_in(random.key(model.seed), model.batches_trained)
            number = backend.asarray(0, dtype=backend.xp.uint32)
        model.graph.params, model.opt_state, totals = model.steps.get("train")(
            model.graph.params, model.opt_state, model.steps.zero_totals(), *batch.arrays, key, number)
        model.batches_trained += 1
        return self.logs(totals)

    def _warn_if_not_finite(self, loss, epoch, callback_list):
        model = self.model
        if math.isfinite(loss) or model.warned_not_finite:
            return
        model.warned_not_finite = True
        terminated = any(isinstance(c, callbacks_module.TerminateOnNaN) for c in callback_list.callbacks)
        advice = ("TerminateOnNaN stopped training and kept the last finite weights." if terminated
                  else "Add portanet.callbacks.TerminateOnNaN() to stop at the first bad batch and "
                       "keep the last finite weights.")
        warnings.warn(
            f"The training loss became {loss} in epoch {epoch + 1}: the weights overflowed. "
            f"The learning rate ({model.learning_rate:g}) is probably too high for this model and data "
            f"(or the inputs are not scaled). {advice}", RuntimeWarning, stacklevel=4)

    def logs(self, totals):
        """Host floats from device totals, in Keras' order: the one host synchronisation of a
        progress update."""
        backend, heads = _backend(), self.model.heads
        logs = {"loss": totals["loss"] / totals["count"]}
        logs.update({name: totals[name] / totals["count"] for _, name in output_losses(heads)})
        for head in heads:
            for name, metric, _ in head.metrics:
                logs[name] = metric.result(totals[name])
        return {k: float(backend.to_numpy(v)) for k, v in logs.items()}

    def evaluate(self, source, batch_size, callback_list=None):
        """{"loss": ..., metric: ...} on host arrays (x, y, w) or a Stream, in batches."""
        model = self.model
        step = model.steps.get("eval")
        totals = model.steps.zero_totals()
        if callback_list is not None:
            callback_list.call("on_test_begin", {})
        for batch in self._batches(source, batch_size):
            if callback_list is not None:
                callback_list.call_batch("test", "begin", batch.number, {})
            totals = step(model.graph.params, totals, *batch.arrays)
            if callback_list is not None and callback_list.wants("test_batch"):
                callback_list.call_batch("test", "end", batch.number, self.logs(totals))
        logs = self.logs(totals)
        if callback_list is not None:
            callback_list.call("on_test_end", logs)
        return logs

    def predict(self, source, batch_size, callback_list=None, verbose=0):
        """The model's outputs for host arrays (x, (), ()) or a Stream, as a list of NumPy arrays
        (one per output), in batches, in inference mode; `verbose` 1 shows a progress bar."""
        backend, graph = _backend(), self.model.graph
        step = self.model.steps.get("predict")
        if callback_list is not None:
            callback_list.call("on_predict_begin", {})
        outputs = []
        steps = source.batches_per_epoch if isinstance(source, Stream) else -(-len(source[0][0]) // batch_size)
        bar = tqdm(total=steps, desc="predict", unit="step", file=sys.stdout, dynamic_ncols=True) if verbose else None
        for batch in self._batches(source, batch_size):
            if bar is not None:
                bar.update(1)
            if callback_list is not None:
                callback_list.call_batch("predict", "begin", batch.number, {})
            out = step(graph.params, batch.arrays[0])
            outputs.append(tree_map(backend.to_numpy, list(out) if len(graph.outputs) > 1 else [out]))
            if callback_list is not None:
                callback_list.call_batch("predict", "end", batch.number, {"outputs": outputs[-1]})
        if bar is not None:
            bar.close()
        if callback_list is not None:
            callback_list.call("on_predict_end", {})
        return [data.concatenate(parts) for parts in zip(*outputs)]


@contextlib.contextmanager
def memory_hint(batch_size):
    """Turn the device's out-of-memory error inside the block into one that names the batch size."""
    try:
        yield
    except DeviceMemoryError:
        raise
    except Exception as error:
        backend = _backend()
        if not backend.is_out_of_memory(error):
            raise
        raise DeviceMemoryError(
            f"The {backend.name} device ({backend.device}) ran out of memory. Expected a batch_size whose "
            f"activations and gradients fit in device memory. Received: batch_size={batch_size}; try a "
            f"smaller one, e.g. batch_size={max(1, batch_size // 2)}.") from error
