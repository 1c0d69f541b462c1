"""The host loop of fit, evaluate and predict (docs/architecture.md, "Graph, steps, trainer").

It feeds batches to the model's steps and keeps the device state (parameters, optimizer state,
running totals) between them; it synchronises with the host once per progress update, and once
per batch only when a callback asks for every batch's logs. Arguments arrive validated (the model
checks them before anything changes).
"""
import contextlib
import math
import time
import warnings

from .. import callbacks as callbacks_module, random
from ..backend import floatx, get as _backend, place
from ..errors import DeviceMemoryError
from . import data
from .feeding import Chunk, choose_feed


class Trainer:
    """The loops of one model; `model` is read for its graph, steps, loss, metrics, optimizer,
    training state and settings (`jit_compile`, `device_data_budget`)."""

    def __init__(self, model):
        self.model = model

    def fit(self, train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list):
        """Train on (x, y) = `train` for epochs initial_epoch..epochs-1; returns the History."""
        model, backend = self.model, _backend()
        trainable = model.graph.trainable_params()
        state = model.optimizer.init(trainable) if model.opt_state is None else model.optimizer.extend(
            model.opt_state, trainable)
        if state is not model.opt_state:  # new arrays: placed on the device (JAX: committed)
            model.opt_state = place(state)
        keep_previous = callback_list.wants_batch_logs  # per-batch losses; no donated arguments
        x, y = train
        feed = choose_feed(x, y, data.label_dtype(y, model.loss, floatx()), batch_size, model.device_data_budget,
                           chunks=model.jit_compile and not keep_previous)
        key = random.key(seed)
        model.stop_training = False
        callback_list.on_train_begin()
        with backend.quiet():  # overflow is reported once, below, not as a wall of warnings
            for epoch in range(initial_epoch, epochs):
                callback_list.on_epoch_begin(epoch)
                started = time.perf_counter()
                progress = callback_list.progress(epoch)
                epoch_key = random.fold_in(key, epoch) if any(layer.needs_key for layer in model.graph.layers) else None
                order = data.epoch_order(len(x), shuffle, seed, epoch)
                logs = self._epoch(feed, order, batch_size, epoch_key, progress, callback_list, keep_previous)
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(*val, batch_size).items()})
                logs["seconds"] = time.perf_counter() - started
                progress.close(logs)
                self._warn_if_not_finite(logs["loss"], epoch, callback_list)
                model.initial_epoch = epoch + 1
                callback_list.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
        callback_list.on_train_end()
        model.history = callback_list.history
        return model.history

    def _epoch(self, feed, order, batch_size, key, progress, callback_list, keep_previous):
        """One epoch's steps; returns its logs."""
        model, backend = self.model, _backend()
        xp = backend.xp
        train = model.steps.get("train", donate=not keep_previous)
        params, opt_state, totals = model.graph.params, model.opt_state, model.steps.zero_totals()
        for work in feed.epoch(order, batch_size):
            if isinstance(work, Chunk):
                first = backend.asarray(work.first, dtype=xp.uint32) if key is not None else None
                params, opt_state, totals = model.steps.get("chunk")(
                    params, opt_state, totals, feed.x, feed.y, work.index, backend.asarray(work.count, dtype=xp.int32),
                    key, first)
                model.graph.params, model.opt_state = params, opt_state
                if progress.bar is not None:
                    progress.update(work.first + work.count, self.logs(totals))
                continue
            number = backend.asarray(work.number, dtype=xp.uint32) if key is not None else None
            before = (params, opt_state) if keep_previous else None
            params, opt_state, new_totals = train(params, opt_state, totals, work.x, work.y, key, number)
            batch_logs = None
            if keep_previous:
                batch_logs = {"loss": float(backend.to_numpy(new_totals["loss"] - totals["loss"])) / work.size}
            totals = new_totals
            model.graph.params, model.opt_state = params, opt_state
            if progress.due(work.number):
                progress.update(work.number + 1, self.logs(totals))
            callback_list.on_train_batch_end(work.number, batch_logs)
            if model.stop_training:
                if before is not None and not math.isfinite(batch_logs["loss"]):
                    model.graph.params, model.opt_state = before  # keep the last finite weights
                break
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
        """Host floats from device totals: the one host synchronisation of a progress update."""
        backend = _backend()
        logs = {"loss": totals["loss"] / totals["count"]}
        for metric in self.model.metrics:
            logs[metric.name] = metric.result(totals[metric.name])
        return {k: float(backend.to_numpy(v)) for k, v in logs.items()}

    def evaluate(self, x, y, batch_size):
        """{"loss": ..., metric: ...} on host arrays (x, y), in batches."""
        model, backend = self.model, _backend()
        step = model.steps.get("eval")
        y_dtype = getattr(backend.xp, data.label_dtype(y, model.loss, floatx()).name)
        totals = model.steps.zero_totals()
        for index in data.batches(data.epoch_order(len(x), False, 0, 0), batch_size):
            totals = step(model.graph.params, totals, backend.asarray(x[index], dtype=backend.float_dtype()),
                          backend.asarray(y[index], dtype=y_dtype))
        return self.logs(totals)

    def predict(self, x, batch_size):
        """The model's outputs for host array x, as a NumPy array (batched, inference mode)."""
        backend = _backend()
        step = self.model.steps.get("predict")
        params = self.model.graph.params
        outputs = [backend.to_numpy(step(params, backend.asarray(x[index], dtype=backend.float_dtype())))
                   for index in data.batches(data.epoch_order(len(x), False, 0, 0), batch_size)]
        return data.concatenate(outputs)


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
