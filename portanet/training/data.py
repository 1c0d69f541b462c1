"""Host-side data handling for the training loop: validation, splitting, shuffling, batching.

Everything here works on NumPy arrays on the host, before anything reaches a device, so that bad
input is reported before any training state changes.
"""
import math

import numpy as np

from ..errors import InvalidArgumentError, InvalidTypeError, invalid, is_number


def as_array(value, name):
    """`value` as a NumPy array (from lists, NumPy, or any array with __array__/__dlpack__)."""
    if value is None:
        raise invalid(name, "an array", value, InvalidTypeError)
    if not isinstance(value, np.ndarray):
        try:
            value = np.from_dlpack(value) if hasattr(value, "__dlpack__") else np.asarray(value)
        except (TypeError, ValueError, BufferError, RuntimeError):
            try:
                value = np.asarray(value)
            except (TypeError, ValueError) as error:
                raise invalid(name, "an array of numbers", type(value).__name__, InvalidTypeError) from error
    if value.dtype.kind not in "biuf":
        raise invalid(name, "an array of numbers (bool, int or float dtype)", f"an array of dtype {value.dtype}",
                      InvalidTypeError)
    return value


def check_verbose(verbose):
    """verbose as 0 (silent), 1 (a progress bar; "auto") or 2 (a line per epoch)."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise invalid("verbose", "0, 1, 2 or 'auto'", verbose)
    return verbose


def check_batch_size(batch_size):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise invalid("batch_size", "a positive int", batch_size)
    return batch_size


def check_features(x, input_shape, name="x"):
    """x has at least one example and the model's example shape."""
    if x.ndim == 0 or x.shape[0] == 0:
        raise invalid(name, "a non-empty array with examples along axis 0", f"an array of shape {x.shape}")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise invalid(f"{name}.shape", f"(batch, {', '.join(map(str, input_shape))}) for this model",
                      tuple(x.shape))


def check_finite(x, name):
    """The index of the first example holding NaN or Inf is reported (floats only)."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise InvalidArgumentError(
            f"Invalid value for `{name}`. Expected finite numbers. Received: NaN or Inf in {int(bad.sum())} "
            f"example(s), the first at index {first}. Clean the data, or pass check_finite=False to skip this check.")


def check_labels(y, loss, output_shape, name="y"):
    """Labels fit the loss and the model's output: integer classes in range for sparse losses
    (float labels holding whole numbers are cast), one-hot rows for categorical ones, 0/1 (or
    probabilities) for binary ones; any labels of the output's shape for an output without a loss."""
    if loss is None:
        return y.reshape(-1, 1) if y.ndim == 1 and tuple(output_shape) == (1,) else y
    n_out = output_shape[-1] if output_shape else 1
    kind = getattr(loss, "label_kind", "dense")
    if y.ndim == 0 or y.shape[0] == 0:
        raise invalid(name, "a non-empty array with labels along axis 0", f"an array of shape {y.shape}")
    if kind == "sparse":
        if y.ndim == len(output_shape) + 1 and y.shape[1:] == tuple(output_shape) and n_out > 1:
            raise invalid(name, f"integer class indices of shape ({y.shape[0]},) for "
                          f"{loss.name} (these look one-hot: use categorical_crossentropy)",
                          f"an array of shape {y.shape}")
        if y.dtype.kind == "f":  # cast, as Keras, when they are whole numbers
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise invalid(name, f"integer class indices for {loss.name}", f"float labels that are not whole "
                              f"numbers (e.g. {y.reshape(-1)[np.flatnonzero(y != np.round(y))[:1]].tolist()})",
                              InvalidTypeError)
            y = y.astype(np.int64)
        flat = y.reshape(y.shape[0], -1)
        if flat.shape[1] != 1 and flat.shape[1:] != tuple(output_shape[:-1]):
            raise invalid(f"{name}.shape", f"({y.shape[0]},) class indices", y.shape)
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= n_out:
            raise invalid(name, f"class indices in [0, {n_out - 1}] for a model with {n_out} outputs",
                          f"labels from {low} to {high}")
        return y.reshape(y.shape[0], *output_shape[:-1]) if len(output_shape) > 1 else y.reshape(-1)
    if kind == "dense" and y.ndim == 1 and n_out > 1 and getattr(loss, "name", "").startswith("categorical"):
        raise invalid(name, f"one-hot labels of shape ({y.shape[0]}, {n_out}) for {loss.name} (for integer "
                      f"labels use sparse_categorical_crossentropy, or portanet.datasets.to_categorical)",
                      f"an array of shape {y.shape}")
    if y.ndim == 1 and tuple(output_shape) == (1,):
        y = y.reshape(-1, 1)
    if tuple(y.shape[1:]) != tuple(output_shape):
        raise invalid(f"{name}.shape", f"(batch, {', '.join(map(str, output_shape))}) like the model's output",
                      tuple(y.shape))
    if kind == "binary" and (y.min() < 0 or y.max() > 1):
        raise invalid(name, f"values in [0, 1] for {loss.name}", f"values from {y.min()} to {y.max()}")
    return y


def check_same_length(arrays, names):
    """Every array has as many examples as the first."""
    for array, name in zip(arrays[1:], names[1:]):
        if array.shape[0] != arrays[0].shape[0]:
            raise invalid(name, f"as many examples as {names[0]} ({arrays[0].shape[0]})", f"{array.shape[0]} examples")


# ----- several inputs and outputs, sample weights ---------------------------------------------------
def entries(value, names, argument, kind):
    """One entry per name (the inputs' or the outputs') from `value`: for one name, the value
    itself (or a list holding it); a list or tuple in order; a dict keyed by the names."""
    if isinstance(value, dict):
        unknown, missing = sorted(set(value) - set(names)), [n for n in names if n not in value]
        if unknown or missing:
            raise invalid(argument, f"a dict keyed by the model's {kind} names {names}",
                          f"a dict with keys {sorted(value)}")
        return [value[n] for n in names]
    if len(names) == 1:
        if isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape"):
            return [value[0]]
        return [value]
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        received = f"a list of {len(value)} entries" if isinstance(value, (list, tuple)) else type(value).__name__
        raise invalid(argument, f"a list of {len(names)} arrays, one per {kind} ({', '.join(names)}), or a dict "
                      f"keyed by those names", received, InvalidTypeError)
    return list(value)


def features(x, shapes, names, argument="x", check_finite_values=True):
    """The model's inputs as a list of host arrays, each checked against its input's shape."""
    xs = [as_array(v, argument if len(names) == 1 else f"{argument}[{n!r}]")
          for v, n in zip(entries(x, names, argument, "input"), names)]
    for v, shape, n in zip(xs, shapes, names):
        label = argument if len(names) == 1 else f"{argument}[{n!r}]"
        check_features(v, shape, label)
        if check_finite_values:
            check_finite(v, label)
    check_same_length(xs, [argument if len(names) == 1 else f"{argument}[{n!r}]" for n in names])
    return xs


def targets(y, heads, shapes, argument="y", check_finite_values=True):
    """The labels of every output as a list of host arrays, each checked against its loss."""
    names = [h.name for h in heads]
    labels = []
    for v, head, shape in zip(entries(y, names, argument, "output"), heads, shapes):
        label = argument if len(heads) == 1 else f"{argument}[{head.name!r}]"
        v = check_labels(as_array(v, label), head.loss, shape, label)
        if check_finite_values:
            check_finite(v, label)
        labels.append(v)
    return labels


def weights(sample_weight, class_weight, ys, heads, argument="sample_weight"):
    """The sample weights of every output (None where it has none), from `sample_weight` (one
    array for every output, or one per output) or `class_weight` ({class: weight}, one output:
    each example weighs its class's weight, 1 for classes not listed)."""
    n = ys[0].shape[0]
    if class_weight is not None:
        if sample_weight is not None:
            raise invalid("class_weight", "no sample_weight alongside it (give one or the other)", class_weight)
        if len(heads) > 1:
            raise invalid("class_weight", "a model with one output (for several, give sample_weight per output)",
                          class_weight)
        return [class_weights(ys[0], class_weight, heads[0])]
    if sample_weight is None:
        return [None] * len(heads)
    names = [h.name for h in heads]
    if isinstance(sample_weight, dict) and len(heads) > 1:  # outputs left out have no weights
        unknown = sorted(set(sample_weight) - set(names))
        if unknown:
            raise invalid(argument, f"a dict keyed by the model's output names {names}", f"unknown keys {unknown}")
        values = [sample_weight.get(name) for name in names]
    elif isinstance(sample_weight, (list, tuple)) and len(heads) > 1:
        values = entries(sample_weight, names, argument, "output")
    else:
        values = [sample_weight] * len(heads)  # one array for every output, as Keras
    result = []
    for w, y, head in zip(values, ys, heads):
        result.append(None if w is None else check_sample_weight(as_array(w, argument), n, y, head, argument))
    return result


def check_sample_weight(w, n, y, head, argument):
    """One finite, non-negative weight per example ((n,) or (n, 1)), or per time step ((n, steps)
    for an output whose loss has such a shape)."""
    if w.ndim == 2 and w.shape[1] == 1:
        w = w.reshape(-1)
    loss_shape = y.shape if head.label_kind == "sparse" else y.shape[:-1]
    if w.shape != (n,) and w.shape != tuple(loss_shape):
        raise invalid(f"{argument}.shape", f"({n},): one weight per example", tuple(w.shape))
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise invalid(argument, "finite, non-negative weights", f"values from {w.min()} to {w.max()}")
    return w.astype(np.float64)


def class_weights(y, class_weight, head):
    """Per-example weights from {class index: weight}: the label's class (one-hot rows: their
    argmax; one binary column: the rounded label)."""
    if not isinstance(class_weight, dict) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and is_number(v) and v >= 0
            for k, v in class_weight.items()):
        raise invalid("class_weight", "a dict {class index (int): non-negative weight}", class_weight,
                      InvalidTypeError)
    if head.label_kind == "sparse":
        classes = y.reshape(y.shape[0], -1)[:, 0]
    elif y.ndim > 1 and y.shape[-1] > 1:
        classes = y.argmax(axis=-1)
    else:
        classes = np.round(y.reshape(y.shape[0], -1)[:, 0])
    table = np.ones(int(max(int(classes.max()), *map(int, class_weight))) + 1)
    for k, v in class_weight.items():
        if k >= 0:
            table[int(k)] = v
    return table[classes.astype(np.int64)]


def dtypes(arrays, heads, floatx):
    """The device dtypes of host data (x, y, w): features and weights floatx, labels as
    `label_dtype` says (None for missing weights)."""
    x, y, w = arrays
    f = np.dtype(floatx)
    labels = np.dtype("int32")  # class indices: int32 exists on every backend (JAX without x64)
    return (tuple(f for _ in x), tuple(labels if h.label_kind == "sparse" else f for h in heads or ()),
            tuple(None if v is None else f for v in w))


def rows(arrays, index):
    """The examples `index` of every array of (x, y, w)."""
    return tuple(tuple(None if a is None else a[index] for a in part) for part in arrays)


def check_validation_split(split):
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise invalid("validation_split", "a float in [0, 1)", split)
    return float(split)


def split_tail(arrays, fraction):
    """The last `fraction` of the examples of (x, y, w) (before any shuffling, as Keras) as
    validation data: (train, validation or None)."""
    n = arrays[0][0].shape[0]
    n_val = int(math.floor(n * fraction))
    if fraction and (n_val == 0 or n_val == n):
        raise invalid("validation_split", f"a fraction leaving examples on both sides of {n}", fraction)
    cut = n - n_val
    return rows(arrays, slice(0, cut)), (rows(arrays, slice(cut, n)) if n_val else None)


def epoch_order(n, shuffle, seed, epoch):
    """The order of the examples in one epoch: seeded by (seed, epoch), so resuming is exact."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(order, batch_size):
    """Index arrays of consecutive batches (the last one may be smaller, as in Keras)."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def batch_matrix(order, batch_size, steps, per_chunk):
    """The first `steps` full batches of `order` as int32 rows of a (chunks, per_chunk, batch_size)
    array; the last chunk is padded with repeats of its first batch (never run: its count is smaller)."""
    full = order[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)
    chunks = -(-steps // per_chunk)
    padded = np.concatenate([full, np.repeat(full[:1], chunks * per_chunk - steps, axis=0)])
    return padded.reshape(chunks, per_chunk, batch_size)


def concatenate(chunks):
    return np.concatenate(chunks, axis=0)


def new_seed():
    """A fresh random seed for a run that was given none."""
    return int(np.random.SeedSequence().entropy % 2**31)
