"""The tabular datasets bundled with scikit-learn (iris, digits, breast cancer), split here."""
import numpy as np

from ..errors import InvalidTypeError, MissingDependencyError, invalid
from .preprocessing import train_test_split


def _sklearn_datasets(loader):
    try:
        from sklearn import datasets as sk_datasets
    except ImportError as error:
        raise MissingDependencyError(
            f"portanet.datasets.{loader}() reads the copy of this dataset bundled with scikit-learn, which "
            f"is not installed. Install it with: pip install scikit-learn") from error
    return sk_datasets


def _split_tabular(x, y, test_size, seed):
    return train_test_split(x, y, test_size=test_size, seed=seed, shuffle=True, stratify=y)


def iris(test_size=0.2, seed=0):
    """Fisher's iris flowers (scikit-learn's bundled copy; needs ``pip install scikit-learn``).


    150 examples, no fixed split: split here with a seeded stratified shuffle (`train_test_split`).
    Returns ``(x_train, y_train), (x_test, y_test)``: x float32 (N, 4) in centimetres (sepal
    length, sepal width, petal length, petal width), unscaled; y int64 (N,), 0-2 (setosa,
    versicolor, virginica). With the defaults, 120 train and 30 test examples (10 per class).
    The same `seed` gives the same split on every run and machine.
    """
    data = _sklearn_datasets("iris").load_iris()
    return _split_tabular(data.data.astype(np.float32), data.target.astype(np.int64), test_size, seed)


def digits(test_size=0.2, seed=0, images=False, scale=True):
    """The UCI optical handwritten digits, 8x8 (scikit-learn's bundled copy; needs scikit-learn).


    1797 examples, split here with a seeded stratified shuffle. Returns ``(x_train, y_train),
    (x_test, y_test)``: x float32 of shape (N, 64), or (N, 1, 8, 8) (NCHW) with ``images=True``;
    pixel values are counts 0-16 in the source and are divided by 16 to lie in [0, 1] (the
    scaling a network expects, as course code does with ``X / 16``); ``scale=False`` keeps 0-16.
    y int64 (N,), 0-9. With the defaults, 1437 train and 360 test examples.
    """
    if not isinstance(images, (bool, np.bool_)):
        raise invalid("images", "True or False", images, InvalidTypeError)
    if not isinstance(scale, (bool, np.bool_)):
        raise invalid("scale", "True or False", scale, InvalidTypeError)
    data = _sklearn_datasets("digits").load_digits()
    x = data.data.astype(np.float32)
    if scale:
        x /= np.float32(16.0)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    return _split_tabular(x, data.target.astype(np.int64), test_size, seed)


def breast_cancer(test_size=0.2, seed=0):
    """The Wisconsin diagnostic breast cancer data (scikit-learn's bundled copy; needs scikit-learn).


    569 examples, split here with a seeded stratified shuffle. Returns ``(x_train, y_train),
    (x_test, y_test)``: x float32 (N, 30), unscaled (features span about 1e-3 to 4e3: use
    `standardize`); y int64 (N,), 0 = malignant, 1 = benign (scikit-learn's coding). With the
    defaults, 455 train and 114 test examples.
    """
    data = _sklearn_datasets("breast_cancer").load_breast_cancer()
    return _split_tabular(data.data.astype(np.float32), data.target.astype(np.int64), test_size, seed)
