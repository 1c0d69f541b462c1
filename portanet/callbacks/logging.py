"""Callbacks that record training: CSVLogger, TensorBoard, EpochTimer, and LambdaCallback for
hooks written inline."""
import csv
import os
import time
import warnings

from ..errors import InvalidTypeError, MissingDependencyError, invalid
from .base import BATCH_HOOKS, Callback


class CSVLogger(Callback):
    """Append each epoch's logs as a row of a CSV file.

    The columns: "epoch" (counted from 0), then the names of the first epoch's logs, sorted.

    Args:
        filename: the CSV file's path.
        separator: the character between fields. Default ",".
        append: True appends to an existing file (without a second header when it is not empty);
            False (the default) overwrites it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.header_written = None, exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.writer is None:
            self.keys = sorted(logs)
            self.writer = csv.writer(self.file, delimiter=self.separator)
            if not self.header_written:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(logs.get(k, "") for k in self.keys)])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class EpochTimer(Callback):
    """Seconds per epoch (`timer.seconds`, a list), kept out of the History as Keras does.

    No arguments.
    """

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


class LambdaCallback(Callback):
    """A callback from functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`.

    Args:
        **hooks: functions by hook name, called with the hook's arguments: on_epoch_begin and
            on_epoch_end (epoch, logs); on_train_begin, on_train_end, on_test_begin, ... (logs);
            on_batch_begin, on_train_batch_end, ... (batch, logs). None is skipped; another name
            is refused.
    """

    def __init__(self, **hooks):
        super().__init__()
        known = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
                 "on_predict_begin", "on_predict_end", "on_batch_begin", "on_batch_end", *BATCH_HOOKS}
        for name, function in hooks.items():
            if name not in known:
                raise invalid(name, f"one of the hooks {sorted(known)}", function, InvalidTypeError)
            if function is not None and not callable(function):
                raise invalid(name, "a function", function, InvalidTypeError)
            if function is not None:
                setattr(self, name, function)


_KERAS_TENSORBOARD = {"histogram_freq": 0, "write_graph": True, "write_images": False, "write_steps_per_second": False,
                      "update_freq": "epoch", "profile_batch": 0, "embeddings_freq": 0, "embeddings_metadata": None}


class TensorBoard(Callback):
    """Scalar summaries of every epoch's logs, for `tensorboard --logdir log_dir`: the training
    logs under log_dir/train, the validation logs under log_dir/validation, as "epoch_<name>"
    (Keras' layout). Needs the `tensorboard` package (not TensorFlow).

    Args:
        log_dir: the directory of the event files. Default "logs".
        **kwargs: Keras' other arguments (histogram_freq, update_freq, ...): accepted, with a
            warning naming those set to anything but Keras' default (only the epochs' scalars are
            written).
    """

    def __init__(self, log_dir="logs", **kwargs):
        super().__init__()
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as error:
            raise MissingDependencyError(
                "portanet.callbacks.TensorBoard writes summaries with the `tensorboard` package, which is not "
                "installed: pip install tensorboard") from error
        if not isinstance(log_dir, (str, os.PathLike)):
            raise invalid("log_dir", "a directory path", log_dir, InvalidTypeError)
        for name, value in kwargs.items():
            if name not in _KERAS_TENSORBOARD:
                raise InvalidTypeError(f"Unrecognized keyword argument passed to TensorBoard. Expected log_dir or one "
                                       f"of Keras' {', '.join(_KERAS_TENSORBOARD)}. Received: {name}={value!r}")
        ignored = sorted(k for k, v in kwargs.items() if v != _KERAS_TENSORBOARD[k])
        if ignored:
            warnings.warn(f"portanet's TensorBoard writes the epochs' scalars only; ignored: {', '.join(ignored)}",
                          UserWarning, stacklevel=2)
        self.log_dir = os.fspath(log_dir)
        self._event, self._summary, self._writer_class = Event, Summary, EventFileWriter
        self.writers = {}

    def _write(self, part, tag, value, step):
        if part not in self.writers:
            self.writers[part] = self._writer_class(os.path.join(self.log_dir, part))
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        self.writers[part].add_event(self._event(wall_time=time.time(), step=step, summary=summary))

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            validation = name.startswith("val_")
            self._write("validation" if validation else "train", "epoch_" + name.removeprefix("val_"), value, epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
