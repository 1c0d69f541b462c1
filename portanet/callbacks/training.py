"""Callbacks that steer training: EarlyStopping, ModelCheckpoint, BackupAndRestore,
TerminateOnNaN, LearningRateScheduler, ReduceLROnPlateau."""
import math
import os
import sys

from ..errors import InvalidTypeError, check_non_negative_int, check_number, invalid, is_number
from .base import Callback


def _mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise invalid("mode", "'auto', 'min' or 'max'", mode)
    if mode == "auto":
        name = monitor.removeprefix("val_")
        mode = "max" if name in ("accuracy", "acc", "auc", "precision", "recall", "f1_score") or name.endswith(
            "_accuracy") else "min"
    return mode


def _monitored(logs, monitor, who):
    value = (logs or {}).get(monitor)
    if value is None:
        print(f"{who}: `{monitor}` is not among the logs ({sorted(logs or {})}); skipping.", file=sys.stderr)
    return value


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs; with
    `restore_best_weights`, the model ends training with the weights of its best epoch.

    Args:
        monitor: the log to watch. Default "val_loss". A missing value skips the epoch (with a
            warning on stderr).
        min_delta: the smallest change counted as an improvement (its absolute value). Default 0.0.
        patience: non-negative int, the epochs without improvement after which training stops.
            Default 0.
        verbose: 1 prints when training stops and when weights are restored; 0 (the default)
            is silent.
        mode: "min" (improving means decreasing), "max", or "auto" (the default): "max" for
            accuracy, acc, auc, precision, recall, f1_score and names ending in "_accuracy" (with
            or without "val_"), "min" otherwise.
        baseline: a value to beat: training stops after `patience` epochs that do not improve on
            it. Default None.
        restore_best_weights: whether the model ends training (stopped or not) with the weights
            of the best epoch (of the first monitored one if none improved). Default False.
        start_from_epoch: the epochs (counted from 0) before which nothing is monitored. Default 0.

    Example:
        stop = pn.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        model.fit(x, y, epochs=100, validation_split=0.2, callbacks=[stop])
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        check_non_negative_int("patience", patience)
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline, self.restore_best_weights = verbose, baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = _mode(monitor, mode)

    def _improved(self, value, reference):
        if reference is None:
            return True
        return value < reference - self.min_delta if self.mode == "min" else value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = self.baseline, None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Also where training ran all its epochs, the best weights are restored (as Keras 3)."""
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch (or every `save_freq` batches), or only
    when `monitor` improves.

    `filepath` may hold `{epoch}`, `{batch}` and log names: "ckpt-{epoch:02d}-{val_loss:.3f}.pnet".
    `save_training_state=True` also stores the optimizer state, RNG seed and epoch, for an exact
    resume with `fit(..., initial_epoch=...)` after `portanet.load_model`.

    Args:
        filepath: the file to write (a str or path); format fields: `{epoch}` (from 1), `{batch}`
            (from 1, with an int `save_freq` only) and the names of the logs.
        monitor: the log compared with `save_best_only`. Default "val_loss".
        verbose: 1 prints a line at each save; 0 (the default) is silent.
        save_best_only: save only when `monitor` beats the best value so far (a missing value
            skips the save, with a warning). Default False.
        save_weights_only: write only the weights (`model.save_weights`), else the whole model
            (`model.save`). Default False.
        mode: "min" (improving means decreasing), "max", or "auto" (the default): "max" for
            accuracy, acc, auc, precision, recall, f1_score and names ending in "_accuracy" (with
            or without "val_"), "min" otherwise.
        save_freq: "epoch" (the default: at each epoch's end) or a positive int: every that many
            batches (counted across epochs; a host synchronisation per batch).
        save_training_state: portanet's: whether a whole-model save includes the optimizer state
            and training position. Default True.

    Example:
        best = pn.callbacks.ModelCheckpoint("best.pnet", monitor="val_accuracy", save_best_only=True)
        model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[best])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", save_training_state=True):
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise invalid("filepath", "a path", filepath, InvalidTypeError)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0):
            raise invalid("save_freq", "'epoch' or a positive number of batches", save_freq)
        if save_freq == "epoch" and "{batch" in os.fspath(filepath):
            raise invalid("filepath", "{batch} only with an int save_freq (saves every that many batches)", filepath)
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq, self.save_training_state = save_freq, save_training_state
        self.mode = _mode(monitor, mode)
        self.best, self.epoch, self.batches = None, 0, 0
        if save_freq != "epoch":  # a batch hook only then: it costs a host synchronisation per batch
            self.on_train_batch_end = self.save_every

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def save_every(self, batch, logs=None):
        self.batches += 1
        if self.batches % self.save_freq == 0:
            self.save(self.epoch, logs or {}, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self.save(epoch, logs or {})

    def save(self, epoch, logs, batch=None):
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if value is None:
                return
            if self.best is not None and not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **({} if batch is None else {"batch": batch + 1}), **logs)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path, include_optimizer=self.save_training_state)


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite.

    The model keeps the weights it had before that batch (the last finite ones). No arguments.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training", file=sys.stderr)
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to `schedule(epoch, lr)`.

    The rate is also logged as "learning_rate" at each epoch's end. The optimizer's
    `learning_rate` must be a float (a `LearningRateSchedule` cannot be set).

    Args:
        schedule: a function (epoch, lr) -> the new rate: epoch counted from 0, lr the current
            rate (a float); it returns a finite non-negative number.
        verbose: 1 prints the new rate at each epoch; 0 (the default) is silent.

    Example:
        def schedule(epoch, lr):
            return lr if epoch < 10 else lr * 0.9
        model.fit(x, y, epochs=20, callbacks=[pn.callbacks.LearningRateScheduler(schedule)])
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise invalid("schedule", "a function (epoch, lr) -> lr", schedule, InvalidTypeError)
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.learning_rate))
        if not math.isfinite(lr) or lr < 0:
            raise invalid("schedule", "a function returning a finite non-negative learning rate", lr)
        self.model.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs.

    The rate is also logged as "learning_rate" at each epoch's end.

    Args:
        monitor: the log to watch. Default "val_loss".
        factor: new rate = rate * factor, a float in (0, 1). Default 0.1.
        patience: the epochs without improvement after which the rate is reduced. Default 10.
        verbose: 1 prints each reduction; 0 (the default) is silent.
        mode: "min" (improving means decreasing), "max", or "auto" (the default): "max" for
            accuracy, acc, auc, precision, recall, f1_score and names ending in "_accuracy" (with
            or without "val_"), "min" otherwise.
        min_delta: the smallest change counted as an improvement. Default 1e-4.
        cooldown: the epochs to wait after a reduction before counting again. Default 0.
        min_lr: the lower bound of the rate. Default 0.0.

    Example:
        reduce = pn.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=1e-5)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if not is_number(factor) or not 0 < factor < 1:
            raise invalid("factor", "a float in (0, 1)", factor)
        check_non_negative_int("patience", patience)
        check_non_negative_int("cooldown", cooldown)
        check_number("min_lr", min_lr)
        check_number("min_delta", min_delta)
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.mode = _mode(monitor, mode)

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                       else value > self.best + self.min_delta)
        if better:
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.learning_rate
                new = max(old * self.factor, self.min_lr)
                if new < old:
                    self.model.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class BackupAndRestore(Callback):
    """Back up the model, its optimizer state and its training position at the end of every
    epoch; when `fit` starts and a backup exists (the previous run was killed), restore it and
    continue from the epoch after it, with the same shuffling and dropout as an unbroken run.
    The backup is deleted when training ends normally (unless `delete_checkpoint=False`).

    Portable: the backup is a portanet model file, restorable on any backend.

    Args:
        backup_dir: the directory of the backup (backup_dir/latest.pnet).
        save_freq: only "epoch" (the default): portanet resumes at epoch boundaries.
        delete_checkpoint: whether to delete the backup when training ends normally. Default True.

    Example:
        model.fit(x, y, epochs=50, callbacks=[pn.callbacks.BackupAndRestore("/tmp/backup")])
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise invalid("backup_dir", "a directory path", backup_dir, InvalidTypeError)
        if save_freq != "epoch":
            raise invalid("save_freq", "'epoch' (portanet resumes training at epoch boundaries)", save_freq)
        self.backup_dir, self.delete_checkpoint = os.fspath(backup_dir), delete_checkpoint
        self.path = os.path.join(self.backup_dir, "latest.pnet")
        self.restored_epoch = None

    def on_train_begin(self, logs=None):
        self.restored_epoch = None
        if os.path.exists(self.path):
            self.model.load_checkpoint(self.path)
            self.restored_epoch = self.model.initial_epoch

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        self.model.save(self.path, include_optimizer=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)
