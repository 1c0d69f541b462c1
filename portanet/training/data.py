"""Host-side data handling for the training loop: validation, splitting, shuffling, batching.

Everything here works on NumPy arrays on the host, before anything reaches a device, so that bad
input is reported before any training state changes.
"""
import math

import numpy as np

from ..errors import InvalidArgumentError, InvalidTypeError, invalid


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
    """Labels fit the loss and the model's output: integer classes in range for sparse losses,
    one-hot rows for categorical ones, 0/1 (or probabilities) for binary ones."""
    n_out = output_shape[-1] if output_shape else 1
    kind = getattr(loss, "label_kind", "dense")
    if y.ndim == 0 or y.shape[0] == 0:
        raise invalid(name, "a non-empty array with labels along axis 0", f"an array of shape {y.shape}")
    if kind == "sparse":
        if y.ndim == len(output_shape) + 1 and y.shape[1:] == tuple(output_shape) and n_out > 1:
            raise invalid(name, f"integer class indices of shape ({y.shape[0]},) for "
                          f"{loss.name} (these look one-hot: use categorical_crossentropy)",
                          f"an array of shape {y.shape}")
        if y.dtype.kind == "f":
            raise invalid(name, f"integer class indices for {loss.name}", f"float labels of dtype {y.dtype} "
                          f"(convert with y.astype('int64'))", InvalidTypeError)
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


def check_same_length(x, y, names=("x", "y")):
    if x.shape[0] != y.shape[0]:
        raise invalid(names[1], f"as many examples as {names[0]} ({x.shape[0]})", f"{y.shape[0]} examples")


def check_validation_split(split):
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise invalid("validation_split", "a float in [0, 1)", split)
    return float(split)


def split_tail(x, y, fraction):
    """The last `fraction` of the examples (before any shuffling, as Keras) as validation data."""
    n_val = int(math.floor(x.shape[0] * fraction))
    if fraction and (n_val == 0 or n_val == x.shape[0]):
        raise invalid("validation_split", f"a fraction leaving examples on both sides of {x.shape[0]}", fraction)
    cut = x.shape[0] - n_val
    return (x[:cut], y[:cut]), ((x[cut:], y[cut:]) if n_val else None)


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


def label_dtype(y, loss, floatx):
    """Integer labels stay integers for sparse losses; everything else becomes floatx."""
    if getattr(loss, "label_kind", "dense") == "sparse":
        return np.dtype("int32")  # class indices; int32 exists on every backend (JAX without x64)
    return np.dtype(floatx)


def concatenate(chunks):
    return np.concatenate(chunks, axis=0)


def new_seed():
    """A fresh random seed for a run that was given none."""
    return int(np.random.SeedSequence().entropy % 2**31)
