"""Datasets for the examples and courses, loaded on the host as NumPy arrays (Keras convention).

Every loader returns ``(x_train, y_train), (x_test, y_test)``:

| loader | x | y |
| --- | --- | --- |
| `fashion_mnist()`, `mnist()` | uint8 (N, 28, 28), 0-255 | uint8 (N,), 0-9 |
| `cifar10()` | uint8 (N, 3, 32, 32), 0-255, NCHW | uint8 (N,), 0-9 |
| `iris()` | float32 (N, 4) | int64 (N,), 0-2 |
| `digits()` | float32 (N, 64) in [0, 1] (or (N, 1, 8, 8)) | int64 (N,), 0-9 |
| `breast_cancer()` | float32 (N, 30), unscaled | int64 (N,), 0/1 |

Where the image datasets are found (the first complete copy wins):

1. ``path=`` when given: that directory (or its ``<dataset>/`` subfolder). An explicit path is
   not a hint: when the files are not there, the loader says so instead of loading another copy.
2. ``$PORTANET_DATA/<dataset>/`` (several roots may be joined with ``os.pathsep``).
3. The Debian package's folder (Fashion-MNIST: ``apt-get install dataset-fashion-mnist`` puts the
   four ``*-ubyte.gz`` files in ``/usr/share/datasets/fashion-mnist/``).
4. The user cache ``$XDG_CACHE_HOME/portanet/<dataset>/`` (``~/.cache/portanet/<dataset>/``).

``<dataset>`` is ``fashion-mnist``, ``mnist`` or ``cifar-10``. IDX files may be gzip-compressed or
raw (``train-images-idx3-ubyte.gz`` or ``train-images-idx3-ubyte``; ``train-images.idx3-ubyte``
is accepted too). With ``download=True`` missing files are fetched from the dataset's official
mirrors into the cache (or into ``path=``), checked against the SHA-256 digests in `CHECKSUMS`
and moved into place only once complete and verified. Nothing here ever unpickles anything.

The helpers `to_categorical`, `train_test_split`, `standardize` and `mean_subtract` work on any
NumPy arrays.
"""
import os
from pathlib import Path

from ..errors import (ChecksumError, CorruptDatasetError, DatasetError, DatasetNotFoundError, MissingDependencyError,
                      invalid)
from . import download as download_module
from .download import check_base_url, check_download
from .formats import (CIFAR_ARCHIVE, CIFAR_FOLDER, CIFAR_TEST, CIFAR_TRAIN, IDX_STEMS, check_path, extract_cifar_archive,
                      find_cifar, find_idx, load_cifar10_batch, load_cifar_files, load_idx, load_idx_dataset)
from .preprocessing import mean_subtract, standardize, to_categorical, train_test_split
from .tabular import breast_cancer, digits, iris

__all__ = [
    "fashion_mnist", "mnist", "cifar10", "iris", "digits", "breast_cancer",
    "to_categorical", "train_test_split", "standardize", "mean_subtract",
    "load_idx", "load_cifar10_batch", "cache_dir",
    "DatasetError", "DatasetNotFoundError", "CorruptDatasetError", "ChecksumError", "MissingDependencyError",
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES",
]


#: Environment variable naming one or more data roots (joined by os.pathsep), each holding
#: one subfolder per dataset: $PORTANET_DATA/fashion-mnist/, $PORTANET_DATA/mnist/, ...
ENV_VAR = "PORTANET_DATA"

#: Folders filled by system packages, searched after $PORTANET_DATA. Debian's
#: `dataset-fashion-mnist` (0.0~git20200523.55506a9-1) installs the four gzip IDX files in
#: /usr/share/datasets/fashion-mnist/. Debian packages neither MNIST nor CIFAR-10.
SYSTEM_DIRS = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": (),
    "cifar-10": (),
}

#: Overrides the user cache root (otherwise $XDG_CACHE_HOME/portanet or ~/.cache/portanet).
CACHE_DIR = None

#: Seconds a download may wait for the server (per connection attempt / read).
DOWNLOAD_TIMEOUT = 60

#: Official mirrors, tried in order. Fashion-MNIST: Zalando Research's GitHub repository and S3
#: bucket. MNIST: the ossci-datasets S3 mirror torchvision uses, then Google's CVDF mirror.
#: CIFAR-10: the dataset authors' page at the University of Toronto.
MIRRORS = {
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "cifar-10": (
        "https://www.cs.toronto.edu/~kriz/",
    ),
}

#: SHA-256 of each file as downloaded from the official mirrors (the publishers' gzip files and
#: the CIFAR-10 binary archive). A download is kept only when its digest matches; a file without
#: a digest here is never downloaded. These are the widely published digests (the same values
#: appear in TensorFlow Datasets' checksum registry and in many independent projects); they
#: agree with the publishers' MD5s (Fashion-MNIST README, torchvision, the CIFAR page).
CHECKSUMS = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "cifar-10": {
        "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    },
}

#: SHA-256 of the *decompressed* IDX files. Recompressing changes a .gz file's digest but not
#: these (Debian's dataset-fashion-mnist ships recompressed .gz files whose contents match).
#: Informational: the loaders do not hash local files; see `load_idx` for the format checks.
RAW_SHA256 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar-10": "CIFAR-10"}
_DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
_LOADERS = {"fashion-mnist": "fashion_mnist", "mnist": "mnist", "cifar-10": "cifar10"}


def cache_dir(dataset=None):
    """The user cache folder portanet downloads into: `CACHE_DIR` if set, else
    ``$XDG_CACHE_HOME/portanet`` (when set to an absolute path), else ``~/.cache/portanet``;
    with `dataset`, its subfolder (e.g. ``~/.cache/portanet/fashion-mnist``)."""
    if CACHE_DIR is not None:
        root = Path(CACHE_DIR).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        root = base / "portanet"
    return root / dataset if dataset else root


def _places(dataset, path):
    """[(label, folder)] in search order."""
    if path is not None:
        places = [("path=", path)]
        if path.name != dataset:
            places.append(("path=", path / dataset))
        return places
    places = []
    roots = [root for root in os.environ.get(ENV_VAR, "").split(os.pathsep) if root]
    for root in roots:
        places.append((f"${ENV_VAR}", Path(root).expanduser() / dataset))
    for folder in SYSTEM_DIRS.get(dataset, ()):
        places.append((f"Debian package {_DEBIAN_PACKAGES.get(dataset, '')}".strip(), Path(folder)))
    places.append(("user cache", cache_dir(dataset)))
    return places


def _how_to_get(dataset, path):
    loader = _LOADERS[dataset]
    target = path if path is not None else cache_dir(dataset)
    lines = []
    if dataset in _DEBIAN_PACKAGES:
        folders = ", ".join(SYSTEM_DIRS.get(dataset, ())) or "its folder"
        lines.append(f"apt-get install {_DEBIAN_PACKAGES[dataset]}   (Debian/Ubuntu; installs into {folders})")
    call = f"path={str(path)!r}, download=True" if path is not None else "download=True"
    lines.append(f"portanet.datasets.{loader}({call})   (downloads from the official mirrors into "
                 f"{target}, checking SHA-256)")
    if dataset == "cifar-10":
        what = f"{CIFAR_ARCHIVE} or its {CIFAR_FOLDER}/ folder"
    else:
        what = ", ".join(stem + ".gz" for stem in IDX_STEMS) + " (gzip or raw)"
    lines.append(f"put {what} into ${ENV_VAR}/{dataset}/ or into a folder you pass as path=")
    return lines


def _not_found(dataset, reports, path, failures=None):
    title = _TITLES[dataset]
    lines = [f"{title} not found. Looked in, in this order:"]
    for i, (label, folder, note) in enumerate(reports, 1):
        lines.append(f"  {i}. {label}: {folder} ({note})")
    if path is None and not os.environ.get(ENV_VAR):
        lines.append(f"  (${ENV_VAR} is not set)")
    if failures:
        lines.append("Downloading failed:")
        lines.extend(f"  - {failure}" for failure in failures)
    lines.append("To get the files, do one of:")
    lines.extend(f"  - {line}" for line in _how_to_get(dataset, path))
    return DatasetNotFoundError("\n".join(lines))


def _locate(dataset, path, fetching, base_url, find, fetch):
    """The first complete copy in the search order; else a download (when asked); else the error."""
    reports = []
    for label, folder in _places(dataset, path):
        found, note = find(folder)
        if found is not None:
            return found
        reports.append((label, folder, note))
    if not fetching:
        raise _not_found(dataset, reports, path)
    folder = path if path is not None else cache_dir(dataset)
    try:
        return fetch(dataset, folder, base_url, download_module.Sources(MIRRORS, CHECKSUMS, DOWNLOAD_TIMEOUT))
    except download_module.DownloadFailed as error:
        raise _not_found(dataset, reports, path, error.failures) from None


def _load_idx_named(dataset, path, download, base_url):
    path, download, base_url = check_path(path), check_download(download), check_base_url(base_url)
    if path is not None and path.is_file():
        raise invalid("path", "a folder holding the four IDX files", str(path))
    files = _locate(dataset, path, download, base_url, find_idx, download_module.download_idx)
    return load_idx_dataset(files)


def fashion_mnist(path=None, download=False, *, base_url=None):
    """Fashion-MNIST (Zalando): 28x28 grayscale images of 10 kinds of clothing.


    Returns ``(x_train, y_train), (x_test, y_test)`` exactly as ``keras.datasets.fashion_mnist``:
    x uint8 of shape (60000, 28, 28) / (10000, 28, 28), pixel values 0-255, unscaled (divide by
    255 for [0, 1]; add the channel axis with ``x[:, None]`` for NCHW layers); y uint8 of shape
    (60000,) / (10000,), class indices 0-9 named in `FASHION_MNIST_CLASSES`.


    Args:
        path: a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
            t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) (or a `fashion-mnist/`
            subfolder holding them). When given, only this folder is searched (and, with
            download=True, downloaded into). Otherwise: $PORTANET_DATA/fashion-mnist/, then
            /usr/share/datasets/fashion-mnist/ (Debian: ``apt-get install dataset-fashion-mnist``),
            then ``~/.cache/portanet/fashion-mnist/``.
        download: fetch missing files from Zalando's mirrors (SHA-256 checked) into the cache.
        base_url: download from this folder URL instead of the official mirrors.


    Raises:
        DatasetNotFoundError: no complete copy (the message lists every place searched).
        CorruptDatasetError: a file is truncated or not the expected IDX content.
        ChecksumError: a download did not match its SHA-256 (nothing is kept).
    """
    return _load_idx_named("fashion-mnist", path, download, base_url)


def mnist(path=None, download=False, *, base_url=None):
    """MNIST handwritten digits, 28x28 grayscale.


    Returns ``(x_train, y_train), (x_test, y_test)`` as ``keras.datasets.mnist``: x uint8 of
    shape (60000, 28, 28) / (10000, 28, 28), 0-255, unscaled; y uint8 (60000,) / (10000,), 0-9.


    Args:
        path: a folder holding the four MNIST IDX files (gzip or raw; or an `mnist/` subfolder
            holding them). Otherwise $PORTANET_DATA/mnist/, then ``~/.cache/portanet/mnist/``
            (Debian does not package MNIST).
        download: fetch missing files (SHA-256 checked) from the ossci-datasets S3 mirror that
            torchvision uses, then Google's CVDF mirror, into the cache.
        base_url: download from this folder URL instead of the official mirrors.


    Raises: as `fashion_mnist`.
    """
    return _load_idx_named("mnist", path, download, base_url)


def cifar10(path=None, download=False, *, base_url=None):
    """CIFAR-10 from its *binary* version (no pickle): 32x32 colour images in 10 classes.


    Returns ``(x_train, y_train), (x_test, y_test)``: x uint8 of shape (50000, 3, 32, 32) /
    (10000, 3, 32, 32), channels first (NCHW, portanet's layout; Keras' loader gives NHWC),
    0-255, unscaled; y uint8 of shape (50000,) / (10000,), 0-9 named in `CIFAR10_CLASSES`
    (Keras gives y of shape (N, 1)). The training set is data_batch_1..5 in order.


    Args:
        path: a folder holding ``cifar-10-batches-bin/`` (data_batch_1.bin ... data_batch_5.bin,
            test_batch.bin), the batches themselves, or ``cifar-10-binary.tar.gz``; or the
            archive file itself; or a folder with a `cifar-10/` subfolder holding any of those.
            Otherwise $PORTANET_DATA/cifar-10/, then ``~/.cache/portanet/cifar-10/``. A found
            archive is extracted next to itself (into the cache when that folder is read-only).
        download: fetch cifar-10-binary.tar.gz (SHA-256 checked) from the authors' page, extract
            its batches safely (no absolute paths, no '..', regular files only) and delete it.
        base_url: download from this folder URL instead of the official one.


    Raises: as `fashion_mnist`; an unsafe archive member raises CorruptDatasetError.
    """
    path, download, base_url = check_path(path), check_download(download), check_base_url(base_url)
    kind, found = _locate("cifar-10", path, download, base_url, find_cifar, download_module.download_cifar)
    if kind == "archive":
        folder = found.parent
        if not os.access(folder, os.W_OK):
            folder = cache_dir("cifar-10")
            folder.mkdir(parents=True, exist_ok=True)
        batches = extract_cifar_archive(found, folder)
        found = {name: batches / name for name in (*CIFAR_TRAIN, CIFAR_TEST)}
    return load_cifar_files(found)
