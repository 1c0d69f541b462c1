"""Saving a model to one file and restoring it (the format: portanet.io; docs/architecture.md,
"Files").

Tensors are named "weights/<layer position>/<param>" and "optimizer/<state path>" with layer-name
keys replaced by positions, so weights saved from one instance load into another instance of the
same architecture, whose default layer names differ, as in Keras. The metadata holds, as JSON,
the architecture, the compile settings (every object in the registries' {"class_name", "config"}
shape) and the training position (seed, epochs done).
"""
import json
import os

from .. import io, optimizers
from ..training import heads
from ..backend import get as _backend
from ..errors import invalid
from ..io import ModelFileError, json_entry
from ..tree import tree_map


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def save_model(model, path, include_optimizer=True, weights_only=False):
    """Write `model` (built) to `path`: the weights, and unless `weights_only` the architecture
    and compile settings; with `include_optimizer` the optimizer state and training position.
    A Keras file name (.keras, .h5) is refused: Keras could not read the file."""
    if os.fspath(path).lower().endswith(KERAS_SUFFIXES):
        raise invalid("filepath", "a portanet file name such as 'model.pnet' (portanet writes its own safetensors "
                      "format, which Keras cannot read: a .keras or .h5 name would promise a Keras file)",
                      os.fspath(path))
    backend = _backend()
    tensors = {name: backend.to_numpy(a) for name, a in io.flatten(_positional(model.params, model), "weights")}
    metadata = {"format": io.FORMAT, "format_version": str(io.FORMAT_VERSION), "backend": backend.name,
                "weights_only": json.dumps(weights_only)}
    if not weights_only:
        metadata["model"] = json.dumps({"class_name": type(model).__name__, "config": model.get_config()})
        if model.heads is not None:
            metadata["compile"] = json.dumps({"optimizer": optimizers.serialize(model.optimizer),
                                              **heads.serialize(model.heads)})
    if include_optimizer and model.opt_state is not None:
        tensors.update({name: backend.to_numpy(a)
                        for name, a in io.flatten(_positional(model.opt_state, model), "optimizer")})
        metadata["training"] = json.dumps({"seed": model.seed, "epoch": model.initial_epoch})
    if backend.process_index == 0:  # in a run of several processes, process 0 writes
        io.write(path, tensors, metadata)
    backend.barrier(f"portanet.save {path}")  # and the others see the file once save returns


def read_model(path):
    """(architecture {"class_name", "config"}, compile settings or None, tensors, metadata) of a
    whole-model file."""
    tensors, metadata = io.read(path)
    if json_entry(metadata, "weights_only", path):
        raise ModelFileError(f"{path!r} holds weights only; build the model and call model.load_weights().")
    spec = json_entry(metadata, "model", path)
    if not isinstance(spec, dict) or spec.get("class_name") not in ("Sequential", "Model") or not isinstance(
            spec.get("config"), dict) or not {"layers", "nodes"} <= set(spec["config"]) or not (
            {"inputs", "input_shape"} & set(spec["config"])):
        raise ModelFileError(f"{path!r} has an unknown or damaged architecture: {str(spec)[:200]}")
    compiled = json_entry(metadata, "compile", path) if "compile" in metadata else None
    return spec, compiled, tensors, metadata


def restore(model, tensors, metadata, path):
    """Put the file's weights (and, if it has them and the model is compiled, the optimizer state
    and training position) into `model`, on the current backend."""
    template = model.params
    _check_weights(model, tensors, template, path)
    model.params = _on_backend(_positional(io.unflatten(tensors, _positional(template, model), "weights"), model,
                                           back=True), template)
    if "training" in metadata and model.optimizer is not None:
        state = model.optimizer.init(model.graph.trainable_params(model.params))
        loaded = io.unflatten(tensors, _positional(state, model), "optimizer")
        model.opt_state = _on_backend(_positional(loaded, model, back=True), state)
        training = json_entry(metadata, "training", path)
        model.seed = training.get("seed", model.seed)
        model.initial_epoch = training.get("epoch") or 0


def load_weights(model, path):
    """Load the weights saved at `path` into a built model of the same architecture."""
    tensors, metadata = io.read(path)
    restore(model, tensors, {k: v for k, v in metadata.items() if k != "training"}, path)


def load_checkpoint(model, path):
    """Weights, optimizer state and training position from a whole-model file into `model`."""
    tensors, metadata = io.read(path)
    restore(model, tensors, metadata, path)


def _positional(tree, model, back=False):
    """`tree` with every layer-name key replaced by the layer's position in `model` (or back),
    at any depth; under a model used as a layer, its own layers' names by their positions in it."""
    if not isinstance(tree, dict):
        return tree
    keyed = {(str(i) if back else layer.name): (layer.name if back else str(i), layer)
             for i, layer in enumerate(model.layers)}
    out = {}
    for key, value in tree.items():
        new_key, layer = keyed.get(key, (key, None))
        out[new_key] = _positional(value, layer if hasattr(layer, "layers") else model, back)
    return out


def _check_weights(model, tensors, params, path):
    flat = dict(io.flatten(_positional(params, model), "weights"))
    missing = sorted(set(flat) - set(tensors))
    extra = sorted(k for k in tensors if k.startswith("weights/") and k not in flat)
    if missing or extra:
        raise ModelFileError(f"{path!r} does not fit model '{model.name}': missing {missing}, unexpected {extra}.")
    for name, array in flat.items():
        if tuple(tensors[name].shape) != tuple(array.shape):
            raise ModelFileError(
                f"{path!r} does not fit model '{model.name}': Expected {name} of shape {tuple(array.shape)}. "
                f"Received: shape {tuple(tensors[name].shape)}")


def _on_backend(tree, template):
    """Host arrays of `tree` on the current backend with the dtypes and shapes of `template`'s
    (files of format 1 stored 0-d arrays as shape (1,))."""
    backend = _backend()
    return tree_map(lambda a, t: backend.asarray(a.reshape(t.shape), dtype=t.dtype), tree, template)
