"""The callback protocol as Keras calls it, History, and the list that calls them during `fit`,
`evaluate` and `predict` (docs/architecture.md, "Callbacks").

Every hook receives `logs`, a dict (possibly empty). Batch hooks run only where some callback
defines them: a batch's logs (the running loss and metrics of the epoch) cost a host
synchronisation per batch, which training otherwise avoids.
"""
import sys

from ..errors import InvalidTypeError, invalid

BATCH_HOOKS = tuple(f"on_{mode}_batch_{when}" for mode in ("train", "test", "predict") for when in ("begin", "end"))


class Callback:
    """Base class: override any hook. `self.model` is the model being trained; `self.params`
    holds "verbose", "epochs" and "steps" (batches per epoch, None where a stream's end tells).

    Every hook receives `logs`, a dict (epoch hooks also the epoch, batch hooks the batch index,
    both counted from 0). A batch hook a subclass defines makes `fit` read the logs every batch.

    Example:
        class Printer(pn.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                print(epoch, logs["loss"])
    """

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)   # Keras: the train-batch hooks call the batch hooks

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


def _defines(callback, hook):
    """True where `callback` has its own `hook` (a method of a subclass, or a function set on it)."""
    own = getattr(callback, hook)
    if getattr(own, "__func__", None) is not getattr(Callback, hook):
        return True
    alias = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(hook)
    return alias is not None and _defines(callback, alias)


class History(Callback):
    """Records every epoch's logs: `history.history["val_loss"]`, `history.epoch`.

    `fit` adds one to its callbacks and returns it; no arguments.
    """

    def __init__(self):
        super().__init__()
        self.epoch, self.history = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class CallbackList:
    """The user's callbacks plus History, called in order (made by `fit`, `evaluate`, `predict`).

    Args:
        callbacks: a list of `Callback`s, or None.
        model: the model given to each callback (`callback.model`).
        verbose, epochs, steps: the entries of each callback's `params`. Defaults 0, 1, None.
    """

    def __init__(self, callbacks, model, verbose=0, epochs=1, steps=None):
        if callbacks is None:
            callbacks = []
        if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, Callback) for c in callbacks):
            raise invalid("callbacks", "a list of portanet.callbacks.Callback objects", callbacks, InvalidTypeError)
        self.history = History()
        self.callbacks = [*callbacks, self.history]
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.batch_hooks = {hook for hook in BATCH_HOOKS if any(_defines(c, hook) for c in self.callbacks)}

    def wants(self, kind):
        """Whether some callback reads the logs of every batch of `kind` ("train_batch", ...)."""
        return f"on_{kind}_end" in self.batch_hooks

    def call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def call_batch(self, mode, when, batch, logs):
        hook = f"on_{mode}_batch_{when}"
        if hook in self.batch_hooks:
            self.call(hook, batch, logs)

    def start_epoch(self, initial_epoch):
        """The first epoch to train: `initial_epoch`, or where a callback restored training from."""
        restored = [c.restored_epoch for c in self.callbacks if getattr(c, "restored_epoch", None) is not None]
        return max(restored) if restored else initial_epoch

    def progress(self, epoch):
        return Progress(epoch, self.epochs, self.steps, self.verbose)


class Progress:
    """One epoch's display: a tqdm bar (verbose=1), a line at its end (verbose=2), or nothing."""

    def __init__(self, epoch, epochs, steps, verbose):
        self.verbose, self.steps = verbose, steps
        self.header = f"Epoch {epoch + 1}/{epochs}"
        self.every = max(1, (steps or 200) // 20)  # host synchronisations per epoch: about 20
        self.bar = None
        if verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=steps, desc=self.header, unit="step", leave=True, dynamic_ncols=True,
                            file=sys.stdout)

    def due(self, batch):
        return self.bar is not None and ((batch + 1) % self.every == 0 or batch + 1 == self.steps)

    def update(self, done, logs):
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(format_logs(logs), refresh=False)

    def close(self, logs, seconds):
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=False)
            self.bar.close()
        elif self.verbose == 2:
            print(f"{self.header} - {seconds:.1f}s - {format_logs(logs)}", flush=True)


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


__all__ = ["Callback", "History", "CallbackList"]
