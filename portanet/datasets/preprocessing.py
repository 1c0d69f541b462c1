"""Preprocessing helpers on any NumPy arrays: one-hot labels, train/test splits, standardization."""
import math

import numpy as np

from ..errors import InvalidTypeError, invalid


def numeric(value, name, allow_bool=True):
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise invalid(name, "an array of numbers", type(value).__name__, InvalidTypeError) from error
    kinds = "biuf" if allow_bool else "iuf"
    if array.dtype.kind not in kinds:
        raise invalid(name, "an array of numbers", f"an array of dtype {array.dtype}", InvalidTypeError)
    return array


def check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise invalid("seed", "None or a non-negative int", seed)
    return int(seed)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode class indices, as ``keras.utils.to_categorical``.


    `y` holds integer class indices (ints, or floats with integral values) of any shape; a
    trailing axis of size 1 is dropped, as Keras does, so (N,) and (N, 1) both give
    (N, num_classes), and a scalar gives (num_classes,). `num_classes` defaults to max(y) + 1.
    Returns an array of `dtype` (float32 by default) with a 1 at each index and 0 elsewhere.


    Raises InvalidArgumentError for negative or fractional indices, for an index >= num_classes
    and for a non-positive num_classes; InvalidTypeError for non-numeric input.
    """
    labels = numeric(y, "y")
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise invalid("dtype", "a NumPy dtype such as 'float32'", dtype, InvalidTypeError) from error
    if num_classes is not None and (isinstance(num_classes, (bool, np.bool_))
                                    or not isinstance(num_classes, (int, np.integer)) or num_classes < 1):
        raise invalid("num_classes", "None or a positive int", num_classes)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise invalid("y", "integer class indices", "non-integral float values")
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1).astype(np.int64)
    if flat.size and int(flat.min()) < 0:
        raise invalid("y", "class indices >= 0", int(flat.min()))
    if num_classes is None:
        if flat.size == 0:
            raise invalid("num_classes", "a positive int when y is empty (it cannot be inferred)", num_classes)
        num_classes = int(flat.max()) + 1
    num_classes = int(num_classes)
    if flat.size and int(flat.max()) >= num_classes:
        raise invalid("y", f"class indices in [0, {num_classes - 1}] for num_classes={num_classes}",
                      int(flat.max()))
    out = np.zeros((flat.size, num_classes), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(shape + (num_classes,))


def _test_count(test_size, n):
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise invalid("test_size", "a float in (0, 1) or an int count", test_size, InvalidTypeError)
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise invalid("test_size", "a float in (0, 1) or an int count", test_size)
        count = math.ceil(float(test_size) * n)
    else:
        count = int(test_size)
    if not 1 <= count <= n - 1:
        raise invalid("test_size", f"a size leaving at least one example on each side of {n} examples "
                      f"(test count in [1, {n - 1}])", test_size)
    return count


def _class_keys(stratify, n):
    labels = np.asarray(stratify)
    if labels.ndim == 0 or labels.shape[0] != n:
        raise invalid("stratify", f"class labels of length {n} (one per example)",
                      f"an array of shape {labels.shape}")
    if labels.ndim > 1:  # one-hot or multi-column rows: each distinct row is a class
        labels = labels.reshape(n, -1)
        _, keys = np.unique(labels, axis=0, return_inverse=True)
    else:
        _, keys = np.unique(labels, return_inverse=True)
    return keys.reshape(-1)


def _stratified_indices(keys, n_test, rng):
    classes, counts = np.unique(keys, return_counts=True)
    n = keys.size
    if counts.min() < 2:
        raise invalid("stratify", "at least 2 examples of every class",
                      f"only 1 example of class index {int(classes[np.argmin(counts)])}")
    if n_test < classes.size or n - n_test < classes.size:
        raise invalid("test_size", f"a split giving each side at least one example of each of the "
                      f"{classes.size} classes", f"{n_test} test / {n - n_test} train examples")
    exact = counts * n_test / n
    take = np.floor(exact).astype(np.int64)
    remainder = exact - take
    # The examples still to place go to the classes with the largest remainders; ties are
    # broken at random (seeded) so that no class is favoured by its position.
    order = np.lexsort((rng.permutation(classes.size), -remainder))
    take[order[: n_test - int(take.sum())]] += 1
    test, train = [], []
    for cls, k in zip(classes, take):
        members = np.flatnonzero(keys == cls)
        members = members[rng.permutation(members.size)]
        test.append(members[:k])
        train.append(members[k:])
    test, train = np.concatenate(test), np.concatenate(train)
    return train[rng.permutation(train.size)], test[rng.permutation(test.size)]


def train_test_split(x, y, test_size=0.25, seed=None, shuffle=True, stratify=None):
    """Split paired arrays into training and test parts along axis 0.


    Returns ``(x_train, y_train), (x_test, y_test)`` (the loaders' layout). `test_size` is a
    fraction in (0, 1) (the test part gets ceil(test_size * N) examples, as scikit-learn) or an
    int count. With ``shuffle=True`` (default) examples are drawn by a NumPy generator seeded
    with `seed` (None: fresh entropy, a different split each call; an int: the same split on
    every run). ``shuffle=False`` keeps the order: the last examples form the test part.
    `stratify` (class labels, usually `y`) keeps each class's share the same in both parts
    (largest-remainder allocation); it needs shuffle=True and two or more examples per class.
    """
    x_array, y_array = np.asarray(x), np.asarray(y)
    if x_array.ndim == 0:
        raise invalid("x", "an array with examples along axis 0", "a scalar")
    if y_array.ndim == 0:
        raise invalid("y", "an array with labels along axis 0", "a scalar")
    n = x_array.shape[0]
    if y_array.shape[0] != n:
        raise invalid("y", f"as many labels as x has examples ({n})", f"{y_array.shape[0]} labels")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise invalid("shuffle", "True or False", shuffle, InvalidTypeError)
    seed = check_seed(seed)
    if n < 2:
        raise invalid("x", "at least 2 examples to split", f"{n} example(s)")
    n_test = _test_count(test_size, n)
    if stratify is not None:
        if not shuffle:
            raise invalid("shuffle", "True when stratify is given (a stratified split shuffles)", shuffle)
        keys = _class_keys(stratify, n)
        train, test = _stratified_indices(keys, n_test, np.random.default_rng(seed))
    elif shuffle:
        order = np.random.default_rng(seed).permutation(n)
        train, test = order[: n - n_test], order[n - n_test:]
    else:
        train, test = np.arange(n - n_test), np.arange(n - n_test, n)
    return (x_array[train], y_array[train]), (x_array[test], y_array[test])


def _float_of(array):
    return np.float64 if array.dtype == np.float64 else np.float32


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)) or not -ndim <= item < ndim:
            raise invalid("axis", f"None, an int or a tuple of ints in [-{ndim}, {ndim - 1}]", axis)
        out.append(int(item) % ndim)
    if not out or len(set(out)) != len(out):
        raise invalid("axis", "None, an int or a tuple of distinct ints", axis)
    return tuple(sorted(out))


def _check_test_like(x_test, x_train, axes, name="x_test"):
    test = numeric(x_test, name)
    kept = [ax for ax in range(x_train.ndim) if ax not in axes]
    if test.ndim != x_train.ndim or any(test.shape[ax] != x_train.shape[ax] for ax in kept):
        want = tuple("*" if ax in axes else x_train.shape[ax] for ax in range(x_train.ndim))
        raise invalid(f"{name}.shape", f"a shape matching x_train outside the reduced axes {want}", test.shape)
    return test


def standardize(x_train, x_test=None, axis=0, return_stats=False):
    """Scale to zero mean and unit variance with statistics taken from the training data only.


    mean and std are computed over `axis` of `x_train` (default 0: per feature; use
    ``axis=(0, 2, 3)`` for per-channel statistics of NCHW images, None for one global value)
    and applied to `x_train` and, when given, `x_test`; a feature with zero spread is divided by
    1 (as scikit-learn's StandardScaler). Statistics are computed in float64; results are float32
    (float64 for float64 input), computed in that dtype. Returns x_train_std, or (x_train_std, x_test_std) when x_test
    is given; with ``return_stats=True`` the (mean, std) arrays (keepdims shape) follow.
    """
    train = numeric(x_train, "x_train")
    if train.size == 0:
        raise invalid("x_train", "a non-empty array", f"an array of shape {train.shape}")
    axes = _axes(axis, train.ndim)
    test = None if x_test is None else _check_test_like(x_test, train, axes)
    dtype = _float_of(train)
    mean = train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = train.std(axis=axes, keepdims=True, dtype=np.float64)
    mean, std = mean.astype(dtype), np.where(std > 0, std, 1.0).astype(dtype)


    def scale(x):  # in the result dtype: no float64 temporary of the data's size
        return (x.astype(dtype, copy=False) - mean) / std


    out = [scale(train)]
    if test is not None:
        out.append(scale(test))
    if return_stats:
        out.extend([mean, std])
    return out[0] if len(out) == 1 else tuple(out)


def mean_subtract(x_train, x_test=None, return_mean=False):
    """Subtract the training set's mean example (for images, the mean image) from both sets.


    This is the classic CIFAR-10 preprocessing (e.g. ``x = x.astype('float32') / 255`` then
    ``mean_subtract(x_train, x_test)``): the mean over axis 0 of `x_train`, computed in float64,
    is subtracted from `x_train` and `x_test`. Results are float32 (float64 for float64 input).
    Returns x_train_centred, or (x_train_centred, x_test_centred); with ``return_mean=True`` the
    mean (shape ``x_train.shape[1:]``) follows.
    """
    train = numeric(x_train, "x_train")
    if train.ndim == 0 or train.shape[0] == 0:
        raise invalid("x_train", "a non-empty array with examples along axis 0", f"an array of shape {train.shape}")
    test = None if x_test is None else _check_test_like(x_test, train, (0,))
    dtype = _float_of(train)
    mean = train.mean(axis=0, dtype=np.float64).astype(dtype)
    out = [train.astype(dtype, copy=False) - mean]   # in the result dtype: no float64 temporary
    if test is not None:
        out.append(test.astype(dtype, copy=False) - mean)
    if return_mean:
        out.append(mean)
    return out[0] if len(out) == 1 else tuple(out)
