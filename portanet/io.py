"""Saving and loading models without pickle, in the safetensors layout.

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


def _flatten(tree, prefix):
    if isinstance(tree, dict):
        for k, v in tree.items():
            if "/" in str(k):
                raise invalid("name", "names without '/'", k)
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, tree


def _unflatten(flat, template, prefix):
    if isinstance(template, dict):
        return {k: _unflatten(flat, v, f"{prefix}/{k}") for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return type(template)(_unflatten(flat, v, f"{prefix}/{i}") for i, v in enumerate(template))
    if prefix not in flat:
        raise ModelFileError(f"The file lacks tensor `{prefix}` that the model needs.")
    return flat[prefix]


def write(path, tensors, metadata):
    """Write {name: numpy array} and {key: str} metadata to `path` atomically."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
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
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
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


def _json(metadata, key, path):
    try:
        return json.loads(metadata[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelFileError(f"{path!r} lacks a valid `{key}` entry.") from None


# ----- models ------------------------------------------------------------------------------------
def save_model(model, path, include_optimizer=True, weights_only=False, epoch=None):
    from .backend import get
    model._require_built("save")
    model._ensure_params()
    backend = get()
    tensors = {name: backend.to_numpy(a) for name, a in _flatten(_positional(model.params, model), "weights")}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "backend": backend.name,
                "weights_only": json.dumps(weights_only)}
    if not weights_only:
        metadata["model"] = json.dumps({"class_name": type(model).__name__, "config": model.get_config()})
        if model.loss is not None:
            metadata["compile"] = json.dumps({
                "optimizer": {"class_name": type(model.optimizer).__name__, "config": model.optimizer.get_config()},
                "loss": model.loss.get_config(), "metrics": [m.name for m in model.metrics]})
    if include_optimizer and model.opt_state is not None:
        tensors.update({name: backend.to_numpy(a)
                        for name, a in _flatten(_positional(model.opt_state, model), "optimizer")})
        metadata["training"] = json.dumps({"seed": model.seed, "epoch": epoch})
    write(path, tensors, metadata)


def _positional(tree, model, back=False):
    """`tree` with every layer-name key replaced by the layer's position in the model (or back):
    files name layers by position, so weights saved from one instance load into another instance
    of the same architecture, whose default layer names differ, as in Keras."""
    names = {layer.name: str(i) for i, layer in enumerate(model.layers)}
    if back:
        names = {v: k for k, v in names.items()}
    if isinstance(tree, dict):
        return {names.get(k, k): _positional(v, model, back) for k, v in tree.items()}
    return tree


def _check_weights(model, tensors, path):
    flat = dict(_flatten(_positional(model.params, model), "weights"))
    missing = sorted(set(flat) - set(tensors))
    extra = sorted(k for k in tensors if k.startswith("weights/") and k not in flat)
    if missing or extra:
        raise ModelFileError(f"{path!r} does not fit model '{model.name}': missing {missing}, unexpected {extra}.")
    for name, array in flat.items():
        if tuple(tensors[name].shape) != tuple(array.shape):
            raise ModelFileError(
                f"{path!r} does not fit model '{model.name}': Expected {name} of shape {tuple(array.shape)}. "
                f"Received: shape {tuple(tensors[name].shape)}")


def _restore(model, tensors, metadata, path):
    from .backend import get
    backend = get()
    _check_weights(model, tensors, path)
    weights = _positional(_unflatten(tensors, _positional(model.params, model), "weights"), model, back=True)
    model.params = _to_backend(weights, model.params, backend)
    model._backend_name = backend.name
    model._steps, model._totals_template = {}, None
    if "training" in metadata and model.optimizer is not None:
        template = model.optimizer.init(model._trainable_params())
        state = _unflatten(tensors, _positional(template, model), "optimizer")
        model.opt_state = _to_backend(_positional(state, model, back=True), template, backend)
        training = _json(metadata, "training", path)
        model.seed = training.get("seed", model.seed)
        model.initial_epoch = training.get("epoch")


def _to_backend(tree, template, backend):
    from .tree import tree_map
    return tree_map(lambda a, t: backend.asarray(a, dtype=t.dtype), tree, template)


def load_model(path, compile=True):
    """The model saved at `path`, on the current backend, whichever backend saved it."""
    from . import layers as layers_module
    from .model import Model, Sequential
    tensors, metadata = read(path)
    if _json(metadata, "weights_only", path):
        raise ModelFileError(f"{path!r} holds weights only; build the model and call model.load_weights().")
    spec = _json(metadata, "model", path)
    config = spec.get("config") if isinstance(spec, dict) else None
    if spec.get("class_name") not in ("Sequential", "Model") or not isinstance(config, dict):
        raise ModelFileError(f"{path!r} has an unknown model class {spec.get('class_name')!r}.")
    try:
        built = [layers_module.deserialize(entry) for entry in config["layers"]]
        if spec["class_name"] == "Sequential":
            model = Sequential([layers_module.Input(tuple(config["input_shape"])), *built], name=config["name"])
        else:
            inputs = layers_module.Input(tuple(config["input_shape"]))
            values = [inputs]
            for node in config["nodes"]:
                layer = built[node["layer"]]
                args = [values[i] for i in node["inputs"]]
                values.append(layer(args if layer.multi_input else args[0]))
            model = Model(inputs=inputs, outputs=values[-1], name=config["name"])
    except (KeyError, TypeError, IndexError) as error:
        raise ModelFileError(f"{path!r} has a damaged architecture: {type(error).__name__}: {error}") from None
    model._init_params(seed=0)
    if compile and "compile" in metadata:
        settings = _json(metadata, "compile", path)
        from . import optimizers
        model.compile(optimizer=optimizers.get(settings["optimizer"]), loss=settings["loss"],
                      metrics=settings["metrics"])
    _restore(model, tensors, metadata, path)
    return model


def load_weights(model, path):
    """Load the weights saved at `path` into a built model of the same architecture."""
    model._require_built("load_weights")
    model._ensure_params()
    tensors, metadata = read(path)
    _check_weights(model, tensors, path)
    _restore(model, tensors, {k: v for k, v in metadata.items() if k != "training"}, path)


__all__ = ["save_model", "load_model", "load_weights", "ModelFileError"]
