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
import gzip
import hashlib
import http.client
import math
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from .errors import InvalidTypeError, PortanetError, invalid

__all__ = [
    "fashion_mnist", "mnist", "cifar10", "iris", "digits", "breast_cancer",
    "to_categorical", "train_test_split", "standardize", "mean_subtract",
    "load_idx", "load_cifar10_batch", "cache_dir",
    "DatasetError", "DatasetNotFoundError", "CorruptDatasetError", "ChecksumError", "MissingDependencyError",
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class DatasetError(PortanetError):
    """A dataset could not be loaded."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No complete copy of a dataset was found (and none could be downloaded).

    The message lists every place that was searched and how to get the files."""


class CorruptDatasetError(DatasetError, ValueError):
    """A dataset file exists but is not what it should be (bad header, truncated, unsafe archive)."""


class ChecksumError(CorruptDatasetError):
    """A downloaded file's SHA-256 differs from the known digest; the file was not kept."""


class MissingDependencyError(PortanetError, ImportError):
    """An optional dependency a loader needs is not installed."""


# --------------------------------------------------------------------------------------------
# Constants: where to look, where to download from, what the files must hash to
# --------------------------------------------------------------------------------------------

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

_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-bin"
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32

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


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

def _check_path(path, what="None, a str or an os.PathLike naming a folder"):
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", what, path, InvalidTypeError)
    return Path(os.fspath(path)).expanduser()


def _check_download(download):
    if not isinstance(download, (bool, np.bool_)):
        raise invalid("download", "True or False", download, InvalidTypeError)
    return bool(download)


def _check_base_url(base_url):
    if base_url is None:
        return None
    if not isinstance(base_url, str):
        raise invalid("base_url", "None or a URL string", base_url, InvalidTypeError)
    scheme = urllib.parse.urlsplit(base_url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise invalid("base_url", "an http://, https:// or file:// URL of a folder holding the files", base_url)
    return base_url if base_url.endswith("/") else base_url + "/"


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise invalid("seed", "None or a non-negative int", seed)
    return int(seed)


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path):
    """A file's bytes, gunzipped when it is gzip data (detected by content, not by name)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError as error:
        raise CorruptDatasetError(f"{path}: is a folder, not a data file") from error
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise CorruptDatasetError(
                f"{path}: corrupt or truncated gzip data ({type(error).__name__}: {error}). "
                f"Delete the file and get it again.") from error
    return data


def _parse_idx(data, source):
    known = ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in _IDX_TYPES.items())
    if len(data) < 4:
        raise CorruptDatasetError(f"{source}: not an IDX file: {len(data)} bytes is too short for the "
                                  f"4-byte magic number")
    magic = struct.unpack(">I", data[:4])[0]
    if data[0] != 0 or data[1] != 0:
        raise CorruptDatasetError(
            f"{source}: not an IDX file: bad magic number 0x{magic:08X} (an IDX file starts with two zero "
            f"bytes, a type code and the number of dimensions, e.g. 0x00000803 for uint8 images)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise CorruptDatasetError(f"{source}: bad IDX magic number 0x{magic:08X}: unknown type code "
                                  f"0x{code:02X} (known: {known})")
    if ndim == 0:
        raise CorruptDatasetError(f"{source}: bad IDX magic number 0x{magic:08X}: zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDatasetError(f"{source}: truncated IDX header: {ndim} dimensions need {header} bytes, "
                                  f"the file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    count = math.prod(dims)
    expected = count * dtype.itemsize
    present = len(data) - header
    if present < expected:
        raise CorruptDatasetError(
            f"{source}: truncated IDX file: the header declares shape {dims} of {dtype.name}, {expected} "
            f"bytes of data, but only {present} follow. Delete the file and get it again.")
    if present > expected:
        raise CorruptDatasetError(
            f"{source}: corrupt IDX file: the header declares shape {dims} of {dtype.name}, {expected} "
            f"bytes of data, but {present} follow ({present - expected} unexpected trailing bytes)")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def load_idx(path):
    """Read one IDX file (gzip-compressed or raw) into a writable, native-endian NumPy array.

    The header is validated: two zero bytes, a known type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), at least one dimension, and exactly
    prod(dims) items of data after it. A bad magic number, a truncated file (or gzip stream)
    or trailing bytes raise `CorruptDatasetError` naming the file and what is wrong."""
    what = "a str or os.PathLike naming an IDX file"
    path = _check_path(path, what)
    if path is None:
        raise invalid("path", what, None, InvalidTypeError)
    return _parse_idx(_read_bytes(path), str(path))


def _idx_candidates(stem):
    dotted = stem.replace("-idx", ".idx", 1)
    return (stem + ".gz", stem, dotted + ".gz", dotted)


def _find_idx(directory):
    """(files, note): files maps each stem to a path when all four are in `directory`."""
    if not directory.is_dir():
        return None, "does not exist" if not directory.exists() else "is not a folder"
    files, missing = {}, []
    for stem in _IDX_STEMS:
        for name in _idx_candidates(stem):
            if (directory / name).is_file():
                files[stem] = directory / name
                break
        else:
            missing.append(stem + "(.gz)")
    if missing:
        return None, "no IDX files" if not files else f"incomplete, missing {', '.join(missing)}"
    return files, "complete"


def _load_idx_checked(path, ndim, tail, what):
    array = load_idx(path)
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[1:] != tail:
        want = f"uint8 of shape (N{''.join(', ' + str(d) for d in tail)})"
        raise CorruptDatasetError(f"{path}: expected {what} as IDX {want} (magic 0x0000080{ndim}), found "
                                  f"{array.dtype.name} of shape {array.shape}")
    return array


def _load_idx_dataset(files, num_classes=10):
    out = []
    for split in ("train", "t10k"):
        images_path, labels_path = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
        x = _load_idx_checked(images_path, 3, (28, 28), "images")
        y = _load_idx_checked(labels_path, 1, (), "labels")
        if x.shape[0] != y.shape[0]:
            raise CorruptDatasetError(f"{images_path} holds {x.shape[0]} images but {labels_path} holds "
                                      f"{y.shape[0]} labels")
        if y.size and int(y.max()) >= num_classes:
            raise CorruptDatasetError(f"{labels_path}: labels must be in [0, {num_classes - 1}], found "
                                      f"{int(y.max())}")
        out.append((x, y))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# CIFAR-10 binary batches
# --------------------------------------------------------------------------------------------

def _parse_cifar_batch(data, source):
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise CorruptDatasetError(
            f"{source}: not a CIFAR-10 binary batch: {len(data)} bytes is not a positive multiple of the "
            f"{_CIFAR_RECORD}-byte record (1 label byte + 3072 pixel bytes; an official batch is "
            f"{10000 * _CIFAR_RECORD} bytes). The file is truncated or is another format.")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    y = records[:, 0].copy()
    if int(y.max()) > 9:
        raise CorruptDatasetError(f"{source}: CIFAR-10 labels must be in [0, 9], found {int(y.max())} "
                                  f"(is this a CIFAR-100 file?)")
    x = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return x, y


def load_cifar10_batch(path):
    """Read one CIFAR-10 binary batch (e.g. ``data_batch_1.bin``): records of 1 label byte and
    3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major). Returns x uint8 (N, 3, 32, 32)
    and y uint8 (N,). No pickle is involved."""
    what = "a str or os.PathLike naming a CIFAR-10 .bin batch"
    path = _check_path(path, what)
    if path is None:
        raise invalid("path", what, None, InvalidTypeError)
    return _parse_cifar_batch(path.read_bytes(), str(path))


def _find_cifar(directory):
    """(found, note): found is ("files", {name: path}) or ("archive", path) or None."""
    if directory.is_file():
        return ("archive", directory), "archive"
    if not directory.is_dir():
        return None, "does not exist" if not directory.exists() else "is not a folder"
    notes = []
    for folder in (directory / _CIFAR_FOLDER, directory):
        present = {name: folder / name for name in (*_CIFAR_TRAIN, _CIFAR_TEST) if (folder / name).is_file()}
        if len(present) == 6:
            return ("files", present), "complete"
        if present:
            missing = sorted({*_CIFAR_TRAIN, _CIFAR_TEST} - set(present))
            notes.append(f"{folder} incomplete, missing {', '.join(missing)}")
    archive = directory / _CIFAR_ARCHIVE
    if archive.is_file():
        return ("archive", archive), "archive"
    return None, "; ".join(notes) if notes else f"no {_CIFAR_FOLDER}/ or {_CIFAR_ARCHIVE}"


def _member_parts(member):
    """A tar member's path as safe relative parts, or an error message why it is unsafe."""
    name = member.name
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        return None, "has an absolute path"
    parts = [part for part in PurePosixPath(posix).parts if part not in ("", ".")]
    if ".." in parts:
        return None, "climbs out of the target folder with '..'"
    if member.isdir():
        return parts, None
    if not member.isreg():
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk() else
                "a device" if member.isdev() else "a FIFO" if member.isfifo() else "not a regular file")
        return None, f"is {kind} (only regular files are extracted)"
    return parts, None


def _extract_cifar_archive(archive, directory):
    """Safely extract the CIFAR-10 batches from `archive` into `directory`/cifar-10-batches-bin/.

    Every member is checked before anything is written: an absolute path, a '..' component, a
    link, a device or any other non-regular member rejects the whole archive. Only the regular
    files under cifar-10-batches-bin/ are written, each through a temporary file in the target
    folder and os.replace, so an interrupted extraction leaves no partial batch behind."""
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise CorruptDatasetError(f"{archive}: not a readable tar archive ({type(error).__name__}: {error})") \
            from error
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise CorruptDatasetError(f"{archive}: corrupt or truncated archive ({type(error).__name__}: "
                                      f"{error})") from error
        wanted = {}
        for member in members:
            parts, problem = _member_parts(member)
            if problem:
                raise CorruptDatasetError(f"{archive}: unsafe archive member {member.name!r} {problem}; "
                                          f"nothing was extracted")
            if member.isreg() and len(parts) == 2 and parts[0] == _CIFAR_FOLDER:
                wanted[parts[1]] = member
        missing = [name for name in (*_CIFAR_TRAIN, _CIFAR_TEST) if name not in wanted]
        if missing:
            raise CorruptDatasetError(f"{archive}: not the CIFAR-10 binary archive: it lacks "
                                      f"{', '.join(_CIFAR_FOLDER + '/' + m for m in missing)}")
        target = directory / _CIFAR_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        for name, member in sorted(wanted.items()):
            source = tar.extractfile(member)
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target)
            try:
                with source, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.replace(temporary, target / name)
            except BaseException as error:
                _remove(temporary)
                if isinstance(error, (tarfile.TarError, EOFError, zlib.error)):
                    raise CorruptDatasetError(f"{archive}: corrupt or truncated archive while reading "
                                              f"{member.name} ({type(error).__name__}: {error})") from error
                raise
    return target


def _load_cifar_files(files):
    xs, ys = [], []
    for name in _CIFAR_TRAIN:
        x, y = load_cifar10_batch(files[name])
        xs.append(x)
        ys.append(y)
    x_test, y_test = load_cifar10_batch(files[_CIFAR_TEST])
    return (np.concatenate(xs), np.concatenate(ys)), (x_test, y_test)


# --------------------------------------------------------------------------------------------
# Search and download
# --------------------------------------------------------------------------------------------

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


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _download(url, destination, sha256):
    """Fetch `url` into `destination` atomically: stream into a temporary file in the same folder,
    check its SHA-256, then os.replace. On any failure the temporary file is removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            declared = response.headers.get("Content-Length")
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
            # http.client's read(n) returns short data, without an error, when the server hangs up
            if declared is not None and declared.isdigit() and received != int(declared):
                raise ConnectionError(f"connection closed after {received} of {declared} bytes")
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256.lower():
            raise ChecksumError(f"SHA-256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}. "
                                f"The file was not kept.")
        os.replace(temporary, destination)
    except BaseException:
        _remove(temporary)
        raise


class _DownloadFailed(Exception):
    def __init__(self, failures):
        super().__init__(failures)
        self.failures = failures


def _fetch(dataset, filename, folder, base_url):
    """Download one file of `dataset` into `folder`, trying each mirror in turn."""
    expected = CHECKSUMS.get(dataset, {}).get(filename)
    if expected is None:
        raise DatasetError(f"no known SHA-256 for {dataset}/{filename}; portanet does not download files it "
                           f"cannot verify")
    bases = (base_url,) if base_url else MIRRORS.get(dataset, ())
    failures, mismatches = [], []
    for base in bases:
        url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", filename)
        print(f"portanet: downloading {url}", file=sys.stderr)
        try:
            _download(url, folder / filename, expected)
            return folder / filename
        except ChecksumError as error:
            mismatches.append(str(error))
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {type(error).__name__}: {error}")
    if mismatches:
        raise ChecksumError(f"{dataset}/{filename}: every copy downloaded failed verification:\n  "
                            + "\n  ".join(mismatches + failures))
    raise _DownloadFailed(failures or [f"{filename}: no mirror configured for {dataset}"])


def _download_idx(dataset, folder, base_url):
    for stem in _IDX_STEMS:
        if not any((folder / name).is_file() for name in _idx_candidates(stem)):
            _fetch(dataset, stem + ".gz", folder, base_url)
    files, note = _find_idx(folder)
    if files is None:  # pragma: no cover - _fetch raises before this
        raise DatasetError(f"{folder}: {note} after download")
    return files


def _download_cifar(dataset, folder, base_url):
    archive = _fetch(dataset, _CIFAR_ARCHIVE, folder, base_url)
    try:
        _extract_cifar_archive(archive, folder)
    finally:
        _remove(archive)  # verified and extracted (or unusable): either way not kept
    return ("files", {name: folder / _CIFAR_FOLDER / name for name in (*_CIFAR_TRAIN, _CIFAR_TEST)})


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
        what = f"{_CIFAR_ARCHIVE} or its {_CIFAR_FOLDER}/ folder"
    else:
        what = ", ".join(stem + ".gz" for stem in _IDX_STEMS) + " (gzip or raw)"
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


def _locate(dataset, path, download, base_url, find, fetch):
    """The first complete copy in the search order; else a download (when asked); else the error."""
    reports = []
    for label, folder in _places(dataset, path):
        found, note = find(folder)
        if found is not None:
            return found
        reports.append((label, folder, note))
    if not download:
        raise _not_found(dataset, reports, path)
    folder = path if path is not None else cache_dir(dataset)
    try:
        return fetch(dataset, folder, base_url)
    except _DownloadFailed as error:
        raise _not_found(dataset, reports, path, error.failures) from None


# --------------------------------------------------------------------------------------------
# Image datasets
# --------------------------------------------------------------------------------------------

def _load_idx_named(dataset, path, download, base_url):
    path, download, base_url = _check_path(path), _check_download(download), _check_base_url(base_url)
    if path is not None and path.is_file():
        raise invalid("path", "a folder holding the four IDX files", str(path))
    files = _locate(dataset, path, download, base_url, _find_idx, _download_idx)
    return _load_idx_dataset(files)


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
    path, download, base_url = _check_path(path), _check_download(download), _check_base_url(base_url)
    kind, found = _locate("cifar-10", path, download, base_url, _find_cifar, _download_cifar)
    if kind == "archive":
        folder = found.parent
        if not os.access(folder, os.W_OK):
            folder = cache_dir("cifar-10")
            folder.mkdir(parents=True, exist_ok=True)
        batches = _extract_cifar_archive(found, folder)
        found = {name: batches / name for name in (*_CIFAR_TRAIN, _CIFAR_TEST)}
    return _load_cifar_files(found)


# --------------------------------------------------------------------------------------------
# scikit-learn's bundled tabular datasets
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _numeric(value, name, allow_bool=True):
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise invalid(name, "an array of numbers", type(value).__name__, InvalidTypeError) from error
    kinds = "biuf" if allow_bool else "iuf"
    if array.dtype.kind not in kinds:
        raise invalid(name, "an array of numbers", f"an array of dtype {array.dtype}", InvalidTypeError)
    return array


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode class indices, as ``keras.utils.to_categorical``.

    `y` holds integer class indices (ints, or floats with integral values) of any shape; a
    trailing axis of size 1 is dropped, as Keras does, so (N,) and (N, 1) both give
    (N, num_classes), and a scalar gives (num_classes,). `num_classes` defaults to max(y) + 1.
    Returns an array of `dtype` (float32 by default) with a 1 at each index and 0 elsewhere.

    Raises InvalidArgumentError for negative or fractional indices, for an index >= num_classes
    and for a non-positive num_classes; InvalidTypeError for non-numeric input.
    """
    labels = _numeric(y, "y")
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
    seed = _check_seed(seed)
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
    test = _numeric(x_test, name)
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
    train = _numeric(x_train, "x_train")
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
    train = _numeric(x_train, "x_train")
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
