"""The model file format: named tensors and JSON metadata, without pickle, in the safetensors layout.

    8 bytes: little-endian length N of the header | N bytes: JSON header | raw little-endian tensors

The header maps tensor names ("weights/<layer position>/<param>", "optimizer/<path>") to dtype, shape and
byte offsets; its "__metadata__" holds the format version and, as JSON strings, the architecture,
the compile settings and the training state. Loading parses JSON and copies bytes: nothing in a
file can run code. Only layer classes of portanet.layers can be named by a file. Writes go to a
temporary file, are fsynced, then renamed over the target: a crash leaves the old file intact.
"""
import json
import os
import struct
import tempfile

import numpy as np

from .errors import PortanetError, invalid

FORMAT = "portanet"
FORMAT_VERSION = 1
MAX_HEADER = 100 * 2**20
_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U32": np.uint32}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class ModelFileError(PortanetError, ValueError):
    """A file that is not a portanet model, is damaged, or does not fit the model."""


def flatten(tree, prefix):
    """(name, leaf) pairs of a nested dict/list tree, names "prefix/key/..." (no key may hold "/")."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if "/" in str(k):
                raise invalid("name", "names without '/'", k)
            yield from flatten(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, tree


def unflatten(flat, template, prefix):
    """The tree shaped as `template` whose leaves are flat["prefix/key/..."]."""
    if isinstance(template, dict):
        return {k: unflatten(flat, v, f"{prefix}/{k}") for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return type(template)(unflatten(flat, v, f"{prefix}/{i}") for i, v in enumerate(template))
    if prefix not in flat:
        raise ModelFileError(f"The file lacks tensor `{prefix}` that the model needs.")
    return flat[prefix]


def write(path, tensors, metadata):
    """Write {name: numpy array} and {key: str} metadata to `path` atomically."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, array in tensors.items():
        array = np.asarray(array, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if array.dtype not in _CODES:
            raise invalid(f"tensor {name}", f"one of the dtypes {sorted(map(str, _CODES))}", str(array.dtype))
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise invalid("filepath", "a file path", f"{path} (a directory)")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot write {path!r}: its folder {os.path.dirname(path) or directory!r} does not "
                                f"exist. Create it first (os.makedirs) or choose another path.")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions of any new file (mkstemp makes it 0600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(encoded)))
            f.write(encoded)
            for data in blobs:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def read(path):
    """({name: numpy array}, metadata) from a file written by `write`, validated throughout."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise invalid("filepath", "a model file", f"{path} (a directory)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ModelFileError(f"{path!r} is not a portanet model file: it is {len(blob)} bytes long.")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise ModelFileError(f"{path!r} is not a portanet model file, or it is truncated "
                             f"(its header claims {n} bytes; the file has {len(blob) - 8} after the length).")
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path!r} has a damaged header: {error}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path!r} has a damaged header: not a JSON object.")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a portanet model file (no portanet metadata).")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ModelFileError(
            f"{path!r} has format version {version!r}; this portanet reads version {FORMAT_VERSION}. "
            f"Expected format_version='{FORMAT_VERSION}'. Received: format_version={version!r}")
    data, tensors = blob[8 + n:], {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path!r}: tensor {name!r} has a damaged description: {info!r}") from None
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= len(data) or end - begin != size:
            raise ModelFileError(f"{path!r} is truncated or damaged: tensor {name!r} needs bytes "
                                 f"{begin}..{end} of {len(data)}.")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return tensors, metadata


def json_entry(metadata, key, path):
    """The JSON value stored as metadata[key]."""
    try:
        return json.loads(metadata[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelFileError(f"{path!r} lacks a valid `{key}` entry.") from None


__all__ = ["write", "read", "flatten", "unflatten", "json_entry", "ModelFileError"]
