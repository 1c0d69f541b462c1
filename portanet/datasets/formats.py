"""The image datasets' file formats, read and checked without pickle: IDX (MNIST, Fashion-MNIST),
CIFAR-10's binary batches, and the safe extraction of its archive."""
import gzip
import math
import os
import shutil
import struct
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..errors import CorruptDatasetError, InvalidTypeError, invalid

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
CIFAR_RECORD = 1 + 3 * 32 * 32


def check_path(path, what="None, a str or an os.PathLike naming a folder"):
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", what, path, InvalidTypeError)
    return Path(os.fspath(path)).expanduser()


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path):
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


def parse_idx(data, source):
    known = ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in IDX_TYPES.items())
    if len(data) < 4:
        raise CorruptDatasetError(f"{source}: not an IDX file: {len(data)} bytes is too short for the "
                                  f"4-byte magic number")
    magic = struct.unpack(">I", data[:4])[0]
    if data[0] != 0 or data[1] != 0:
        raise CorruptDatasetError(
            f"{source}: not an IDX file: bad magic number 0x{magic:08X} (an IDX file starts with two zero "
            f"bytes, a type code and the number of dimensions, e.g. 0x00000803 for uint8 images)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise CorruptDatasetError(f"{source}: bad IDX magic number 0x{magic:08X}: unknown type code "
                                  f"0x{code:02X} (known: {known})")
    if ndim == 0:
        raise CorruptDatasetError(f"{source}: bad IDX magic number 0x{magic:08X}: zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDatasetError(f"{source}: truncated IDX header: {ndim} dimensions need {header} bytes, "
                                  f"the file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_TYPES[code]
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
    path = check_path(path, what)
    if path is None:
        raise invalid("path", what, None, InvalidTypeError)
    return parse_idx(read_bytes(path), str(path))


def idx_candidates(stem):
    dotted = stem.replace("-idx", ".idx", 1)
    return (stem + ".gz", stem, dotted + ".gz", dotted)


def find_idx(directory):
    """(files, note): files maps each stem to a path when all four are in `directory`."""
    if not directory.is_dir():
        return None, "does not exist" if not directory.exists() else "is not a folder"
    files, missing = {}, []
    for stem in IDX_STEMS:
        for name in idx_candidates(stem):
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


def load_idx_dataset(files, num_classes=10):
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


def parse_cifar_batch(data, source):
    if len(data) == 0 or len(data) % CIFAR_RECORD:
        raise CorruptDatasetError(
            f"{source}: not a CIFAR-10 binary batch: {len(data)} bytes is not a positive multiple of the "
            f"{CIFAR_RECORD}-byte record (1 label byte + 3072 pixel bytes; an official batch is "
            f"{10000 * CIFAR_RECORD} bytes). The file is truncated or is another format.")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
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
    path = check_path(path, what)
    if path is None:
        raise invalid("path", what, None, InvalidTypeError)
    return parse_cifar_batch(path.read_bytes(), str(path))


def find_cifar(directory):
    """(found, note): found is ("files", {name: path}) or ("archive", path) or None."""
    if directory.is_file():
        return ("archive", directory), "archive"
    if not directory.is_dir():
        return None, "does not exist" if not directory.exists() else "is not a folder"
    notes = []
    for folder in (directory / CIFAR_FOLDER, directory):
        present = {name: folder / name for name in (*CIFAR_TRAIN, CIFAR_TEST) if (folder / name).is_file()}
        if len(present) == 6:
            return ("files", present), "complete"
        if present:
            missing = sorted({*CIFAR_TRAIN, CIFAR_TEST} - set(present))
            notes.append(f"{folder} incomplete, missing {', '.join(missing)}")
    archive = directory / CIFAR_ARCHIVE
    if archive.is_file():
        return ("archive", archive), "archive"
    return None, "; ".join(notes) if notes else f"no {CIFAR_FOLDER}/ or {CIFAR_ARCHIVE}"


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


def extract_cifar_archive(archive, directory):
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
            if member.isreg() and len(parts) == 2 and parts[0] == CIFAR_FOLDER:
                wanted[parts[1]] = member
        missing = [name for name in (*CIFAR_TRAIN, CIFAR_TEST) if name not in wanted]
        if missing:
            raise CorruptDatasetError(f"{archive}: not the CIFAR-10 binary archive: it lacks "
                                      f"{', '.join(CIFAR_FOLDER + '/' + m for m in missing)}")
        target = directory / CIFAR_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        for name, member in sorted(wanted.items()):
            source = tar.extractfile(member)
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target)
            try:
                with source, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.replace(temporary, target / name)
            except BaseException as error:
                remove(temporary)
                if isinstance(error, (tarfile.TarError, EOFError, zlib.error)):
                    raise CorruptDatasetError(f"{archive}: corrupt or truncated archive while reading "
                                              f"{member.name} ({type(error).__name__}: {error})") from error
                raise
    return target


def load_cifar_files(files):
    xs, ys = [], []
    for name in CIFAR_TRAIN:
        x, y = load_cifar10_batch(files[name])
        xs.append(x)
        ys.append(y)
    x_test, y_test = load_cifar10_batch(files[CIFAR_TEST])
    return (np.concatenate(xs), np.concatenate(ys)), (x_test, y_test)
