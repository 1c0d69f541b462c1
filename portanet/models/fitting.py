"""Keras' training API of a model: compile, fit, evaluate, predict and the batch methods
(docs/architecture.md, "Graph, steps, trainer"). Every argument is checked, and the data turned
into host arrays (x, y, w) (one array per input and per output) or a Stream, before anything
changes; the trainer then runs the model's steps.
"""
import itertools
import math
import threading

from .. import callbacks as callbacks_module, distribution as distribution_module, optimizers
from ..errors import InvalidArgumentError, InvalidTypeError, check_non_negative_int, invalid
from ..optimizers import Optimizer
from ..data import check_stream_settings
from ..training import data, heads as heads_module
from ..training.streams import Stream, is_stream, split_item
from ..training.trainer import memory_hint


class Fitting:
    """The training API, mixed into Model (which provides the graph, steps, trainer and state)."""

    _build_lock = threading.Lock()  # a Sequential built from a stream's first batch, by one thread

    # ----- compile ---------------------------------------------------------------------------------
    def compile(self, optimizer: str | dict | Optimizer = "rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, jit_compile: bool | str = "auto") -> None:
        """Choose the optimizer, the loss and the metrics, as in Keras.

        Args:
            optimizer: a name ("adam", "sgd", ... with Keras' defaults), a config dict, or a
                portanet.optimizers.Optimizer.
            loss: a name ("sparse_categorical_crossentropy", "mse", ...) or a portanet.losses.Loss;
                for several outputs, one for all, a list (one per output) or a dict keyed by
                output layer names (None: no loss on that output).
            loss_weights: for several outputs, the weight of each output's loss in the total.
            metrics: a list of names ("accuracy", "mae", ...) or portanet.metrics.Metric; for
                several outputs, a list of such lists (one per output) or a dict.
            weighted_metrics: metrics that weigh examples by the sample weights.
            jit_compile: "auto" or True compiles the steps where the backend can (JAX with XLA,
                CuPy as CUDA graphs); False runs them op by op.
        """
        if jit_compile not in ("auto", True, False):
            raise invalid("jit_compile", "'auto', True or False", jit_compile)
        optimizer = optimizers.get(optimizer)
        heads = heads_module.make_heads(self.output_names, loss, loss_weights, metrics, weighted_metrics)
        for head in heads:
            self._check_loss_fits_output(head)
        self.optimizer, self.heads = optimizer, heads
        self.loss = heads[0].loss if len(heads) == 1 else [h.loss for h in heads]
        self.metrics = [metric for h in heads for _, metric, _ in h.metrics]
        self.jit_compile = jit_compile is not False
        self.opt_state = None

    @property
    def metrics_names(self):
        """The names of the logs: "loss", each output's loss (several outputs), the metrics."""
        return heads_module.log_names(self.heads) if self.heads else []

    def _check_loss_fits_output(self, head):
        if head.loss is None or not self.built:
            return
        out = self.graph.output_shapes[self.output_names.index(head.name)]
        if head.loss.fused_activation == "softmax" and len(out) > 1:
            raise invalid("loss", f"a model whose output is (None, classes) for {head.loss.name}; this model's "
                          f"output is {(None, *out)}: add a Flatten layer before the first Dense", head.loss.name)
        if head.label_kind == "sparse" and out[-1] < 2:
            raise invalid("loss", f"a loss for a single output such as binary_crossentropy or mse (the model "
                          f"has output shape {(None, *out)})", head.loss.name)

    def _require_compiled(self, what):
        if self.optimizer is None or self.heads is None:
            raise InvalidArgumentError(
                f"You must call `compile()` before `{what}`: model '{self.name}' has no optimizer and loss yet.")

    # ----- data ------------------------------------------------------------------------------------
    def _build_for(self, x, argument="x"):
        """Build a Sequential without an Input from its first data `x` (one array)."""
        if not self.built:
            first = data.as_array(data.entries(x, [None], argument, "input")[0], argument)
            data.check_features(first, None, argument)
            with self._build_lock:
                if not self.built:
                    self._build_from_shape(tuple(first.shape[1:]))
        self._ensure_params()

    def _inputs(self, x, check_finite=True, argument="x"):
        """The inputs as a tuple of checked host arrays."""
        self._build_for(x, argument)
        return tuple(data.features(x, self.graph.input_shapes, self.graph.input_names, argument, check_finite))

    def _arrays(self, x, y, sample_weight=None, class_weight=None, check_finite=True,
                names=("x", "y", "sample_weight")):
        """(x, y, w): tuples of checked host arrays, one per input, per output, per output."""
        xs = self._inputs(x, check_finite, names[0])
        if y is None:
            raise invalid(names[1], "labels (an array, or one per output)", y, InvalidTypeError)
        ys = tuple(data.targets(y, self.heads, self.graph.output_shapes, names[1], check_finite))
        ws = tuple(data.weights(sample_weight, class_weight, ys, self.heads, names[2]))
        data.check_same_length([xs[0], *ys, *(w for w in ws if w is not None)],
                               [names[0], *(names[1] for _ in ys), *(names[2] for w in ws if w is not None)])
        return xs, ys, ws

    def _source(self, x, y, sample_weight, class_weight, check_finite, steps=None, shuffle=False, workers=None,
                max_queue_size=None, targets=True, names=("x", "y", "sample_weight")):
        """Host arrays (x, y, w), or a Stream of them where x is a Sequence or an iterable."""
        if not is_stream(x):
            if targets:
                return self._arrays(x, y, sample_weight, class_weight, check_finite, names)
            return self._inputs(x, check_finite, names[0]), (), ()
        for name, value in ((names[1], y), (names[2], sample_weight)):
            if value is not None:
                raise invalid(name, f"None when `{names[0]}` is a stream (its batches hold the labels and weights)",
                              type(value).__name__)
        if not self.built:
            x = self._build_from_stream(x, names[0])
        self._ensure_params()

        def convert(item):
            bx, by, bw = split_item(item, targets, names[0])
            if not targets:
                return self._inputs(bx, check_finite, names[0]), (), ()
            return self._arrays(bx, by, bw, class_weight, check_finite, names)

        return Stream(x, convert, steps, shuffle, workers, max_queue_size, names[0])

    def _build_from_stream(self, source, argument):
        """Build from the stream's first batch; returns the stream (an iterator with that batch put back)."""
        if hasattr(source, "__getitem__") and hasattr(source, "num_batches"):
            first = source[0]
        elif hasattr(source, "__next__"):
            first = next(source)
            source = itertools.chain([first], source)
        else:
            first = next(iter(source))
        self._build_for(split_item(first, False, argument)[0], argument)
        return source

    # ----- fit, evaluate, predict ------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1, verbose: int | str = "auto",
            callbacks: list | None = None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            class_weight: dict | None = None, sample_weight=None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1, workers: int | None = None,
            max_queue_size: int | None = None, use_multiprocessing: bool = False, seed: int | None = None,
            check_finite: bool = True) -> callbacks_module.History:
        """Train for `epochs` epochs, as Keras' `fit`; everything is checked first.

        Args:
            x, y: host arrays (NumPy, lists, or DLPack arrays), examples along axis 0; lists or
                dicts (keyed by Input / output layer names) for several inputs or outputs. Or x
                alone: a portanet.data.Sequence, or a generator / iterable of (x, y) or
                (x, y, sample_weight) batches.
            batch_size: examples per step (default 32; arrays only); the last batch of an epoch
                may be smaller.
            epochs: train until this epoch (counting from `initial_epoch`).
            verbose: "auto" or 1 (a progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: a list of portanet.callbacks.Callback.
            validation_split: the fraction of the arrays held out for validation: their last
                examples, taken before shuffling (Keras' rule).
            validation_data: (x_val, y_val) or (x_val, y_val, sample_weight_val), or a stream,
                evaluated after every `validation_freq` epochs (instead of a split).
            shuffle: shuffle the examples (a Sequence: its batches) every epoch, seeded by `seed`
                and the epoch.
            class_weight: {class index: weight}: each example's loss weighs its class's weight.
            sample_weight: one weight per example (for several outputs: one array for all, or one
                per output).
            initial_epoch: the epoch to start from (resuming, e.g. from `model.initial_epoch`).
            steps_per_epoch: batches per epoch (a stream without an end needs it); an iterator is
                read on across epochs.
            validation_steps, validation_batch_size: batches of a validation stream, the batch
                size of validation arrays (default: batch_size).
            workers, max_queue_size: threads that read a stream's batches ahead, and how many
                (default: the Sequence's own settings; a generator is read by one thread).
            seed: of the shuffling and of dropout (default: the model's weights seed).
            check_finite: refuse data holding NaN or Inf (naming the first bad example).

        Returns:
            The History: `history.history["loss"]`, `["val_loss"]`, each metric, per epoch.
        """
        self._require_compiled("fit()")
        batch_size = data.check_batch_size(batch_size)
        if distribution_module.distribution() is not None:   # the global batch, split evenly
            distribution_module.distribution().check_batch_size(batch_size)
        validation_batch_size = data.check_batch_size(validation_batch_size or batch_size)
        check_non_negative_int("epochs", epochs)
        check_non_negative_int("initial_epoch", initial_epoch)
        for name, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
            if value is not None:
                _check_steps(name, value)
        if isinstance(validation_freq, bool) or not isinstance(validation_freq, int) or validation_freq < 1:
            raise invalid("validation_freq", "a positive int (validate every that many epochs)", validation_freq)
        verbose = data.check_verbose(verbose)
        split = data.check_validation_split(validation_split)
        workers, max_queue_size = check_stream_settings(workers, max_queue_size, use_multiprocessing)
        train = self._source(x, y, sample_weight, class_weight, check_finite, steps_per_epoch, shuffle, workers,
                             max_queue_size)
        val = None
        if validation_data is not None:
            val = self._validation_source(validation_data, check_finite, validation_steps, workers, max_queue_size)
        elif split:
            if isinstance(train, Stream):
                raise invalid("validation_split", "0 when x is a stream (give validation_data)", validation_split)
            train, val = data.split_tail(train, split)
        steps = train.batches_per_epoch if isinstance(train, Stream) else math.ceil(len(train[0][0]) / batch_size)
        if steps_per_epoch is not None and not isinstance(train, Stream):
            steps = min(steps, steps_per_epoch)
        callback_list = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose, epochs=epochs,
                                                      steps=steps)
        if seed is None:
            seed = self.seed if self.seed is not None else data.new_seed()
        with memory_hint(batch_size):
            return self.trainer.fit(train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list,
                                    steps_per_epoch, validation_batch_size, validation_freq)

    def _validation_source(self, validation_data, check_finite, steps, workers, max_queue_size):
        names = ("validation_data[0]", "validation_data[1]", "validation_data[2]")
        if is_stream(validation_data):
            return self._source(validation_data, None, None, None, check_finite, steps, False, workers,
                                max_queue_size, names=("validation_data", "y", "sample_weight"))
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise invalid("validation_data", "a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), or a "
                          "stream", type(validation_data).__name__, InvalidTypeError)
        return self._arrays(*validation_data, check_finite=check_finite, names=names)

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight=None, steps: int | None = None, callbacks: list | None = None,
                 return_dict: bool = False, check_finite: bool = True) -> float | list | dict:
        """Loss and metrics on (x, y), in batches, in inference mode (dropout off, moving
        statistics), as Keras' `evaluate`.

        Args:
            x, y: as `fit`'s (host arrays, lists or dicts of them; or a stream as x alone).
            batch_size: examples per step (default 32; arrays only).
            verbose: "auto", 1 or 2: print the logs at the end; 0: silent.
            sample_weight: per-example weights, as `fit`'s.
            steps: batches to read from a stream (default: all it yields).
            callbacks: `pn.callbacks.Callback`s (their test hooks are called).
            return_dict: return {name: value} instead of a list.
            check_finite: refuse inputs holding NaN or Inf (default True).

        Returns:
            The loss (a float) where it is the only log, else the list of logs in `metrics_names`
            order, or a dict with `return_dict`.

        Example:
            loss, accuracy = model.evaluate(x_test, y_test, verbose=0)"""
        self._require_compiled("evaluate()")
        batch_size = data.check_batch_size(batch_size)
        verbose = data.check_verbose(verbose)
        if steps is not None:
            _check_steps("steps", steps)
        source = self._source(x, y, sample_weight, None, check_finite, steps)
        callback_list = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose)
        with memory_hint(batch_size):
            logs = self.trainer.evaluate(source, batch_size, callback_list)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return logs if return_dict else _flat(logs)

    def predict(self, x, batch_size: int | None = None, verbose: int | str = "auto", steps: int | None = None,
                callbacks: list | None = None):
        """The model's outputs for x, in batches, in inference mode (dropout off).

        Args:
            x: host arrays (a list or dict for several inputs), or a stream of batches (x, or
                tuples whose first entry is x).
            batch_size: examples per step (default 32).
            verbose: "auto" or 1: a progress bar; 0: silent.
            steps: batches to read from a stream (default: to its end).
            callbacks: callbacks whose predict hooks are called.

        Returns:
            A NumPy array (batch, ...) of the model's output; a list of them for several outputs.
        """
        batch_size = data.check_batch_size(batch_size)
        verbose = data.check_verbose(verbose)
        if steps is not None:
            _check_steps("steps", steps)
        source = self._source(x, None, None, None, True, steps, targets=False)
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        with memory_hint(batch_size):
            outputs = self.trainer.predict(source, batch_size, callback_list, verbose=verbose)
        return outputs if len(outputs) > 1 else outputs[0]

    # ----- one batch -------------------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict: bool = False):
        """One training step on this batch, with the compiled step `fit` uses (nothing is
        compiled again from call to call).

        Args:
            x, y: one batch, as `fit`'s arrays (lists or dicts for several inputs or outputs).
            sample_weight: per-example weights of the batch.
            class_weight: {class index: weight}, as `fit`'s.
            return_dict: return {name: value} instead of a list.

        Returns:
            The batch's loss and metrics as `evaluate` returns them (the metrics are reset at
            each call, as Keras resets them)."""
        self._require_compiled("train_on_batch()")
        arrays = self._arrays(x, y, sample_weight, class_weight)
        if self.seed is None:
            self.seed = data.new_seed()
        with memory_hint(len(arrays[0][0])):
            logs = self.trainer.train_batch(arrays)
        return logs if return_dict else _flat(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        """Loss and metrics of one batch in inference mode.

        Args:
            x, y, sample_weight: one batch, as `evaluate`'s.
            return_dict: return {name: value} instead of a list.

        Returns:
            The loss and metrics as `evaluate` returns them."""
        self._require_compiled("test_on_batch()")
        arrays = self._arrays(x, y, sample_weight)
        with memory_hint(len(arrays[0][0])):
            logs = self.trainer.evaluate(arrays, len(arrays[0][0]))
        return logs if return_dict else _flat(logs)

    def predict_on_batch(self, x):
        """The model's outputs for one batch (one step, inference mode).

        Args:
            x: one batch of inputs (a host array; a list or dict for several inputs).

        Returns:
            A NumPy array (batch, ...), or a list of them for several outputs."""
        xs = self._inputs(x)
        with memory_hint(len(xs[0])):
            outputs = self.trainer.predict((xs, (), ()), len(xs[0]))
        return outputs if len(outputs) > 1 else outputs[0]


def _check_steps(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise invalid(name, "a positive int (a number of batches)", value)
    return value


def _flat(logs):
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
