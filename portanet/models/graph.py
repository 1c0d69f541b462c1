"""The graph of a model: its layer calls (nodes), shapes and parameters, and the forward and
backward passes through them (docs/architecture.md, "Graph, steps, trainer").

    graph = Graph(inputs, outputs)                     # symbolic tensors of a functional model
    out, caches = graph.forward(params, x, training, key)
    grads = graph.backward(params, caches, dy)         # {layer name: {param name: gradient}}

The forward and backward passes are pure functions of the parameters passed in; the layers keep
the model's current parameters between steps (`graph.params`).
"""
from .. import random
from ..backend import get as _backend, transfer, use as _use_backend
from ..errors import InvalidTypeError, invalid
from ..layers import REGISTRY as _LAYERS
from ..layers.base import ActivatedLayer, SymbolicTensor
from ..layers.core import Input, InputLayer
from ..tree import tree_map


class Node:
    """One layer call: `layer` applied to the values at `inputs` (0 is the graph's input, i + 1
    the output of node i)."""

    def __init__(self, layer, inputs):
        self.layer, self.inputs = layer, tuple(inputs)


class Graph:
    """The layer calls from one input to one output, each node after the nodes it reads."""

    def __init__(self, inputs, outputs):
        if not isinstance(inputs, SymbolicTensor) or not isinstance(inputs.layer, InputLayer):
            raise invalid("inputs", "the tensor returned by portanet.Input(shape)", inputs, InvalidTypeError)
        if not isinstance(outputs, SymbolicTensor):
            raise invalid("outputs", "a tensor computed from `inputs` by layer calls", outputs, InvalidTypeError)
        index, nodes = {id(inputs): 0}, []

        def visit(tensor):
            if id(tensor) in index:
                return index[id(tensor)]
            if isinstance(tensor.layer, InputLayer):
                raise invalid("outputs", "tensors computed from the model's `inputs` only",
                              f"a tensor from another input ({tensor.layer.name})")
            sources = [visit(t) for t in tensor.inputs]
            nodes.append(Node(tensor.layer, sources))
            index[id(tensor)] = len(nodes)
            return len(nodes)

        visit(outputs)
        self.nodes, self.input_layer, self.input_shape = nodes, inputs.layer, inputs.shape
        self.backend_name = None  # where the parameters live, once drawn

    # ----- structure -----------------------------------------------------------------------------
    @property
    def layers(self):
        """Every layer once, in call order (a reused layer appears once)."""
        return list({id(node.layer): node.layer for node in self.nodes}.values())

    @property
    def output_shape(self):
        return self.nodes[-1].layer.output_shape

    @property
    def output_layer(self):
        return self.nodes[-1].layer

    @property
    def output_activation(self):
        """The name of the last layer's activation (None if it has none): a loss may fuse with it."""
        layer = self.output_layer
        return layer.activation.name if isinstance(layer, ActivatedLayer) else None

    # ----- parameters ----------------------------------------------------------------------------
    def init_params(self, seed):
        """Draw every layer's weights from `seed`, on the host (NumPy), then move them to the
        current backend: the same seed gives bit-identical weights on every backend, and no
        backend compiles the random operations of the initialisation."""
        with _use_backend("numpy"):
            drawn = self.draw(random.key(seed))
        self.params = transfer(drawn, "numpy")
        self.backend_name = _backend().name

    def draw(self, key):
        """Fresh weights of the layers that have none yet: layer i's drawn from fold_in(key, i)."""
        return {layer.name: layer.init(random.fold_in(key, i)) for i, layer in enumerate(self.layers)
                if not layer.weights_drawn}

    @property
    def has_params(self):
        return all(layer.weights_drawn for layer in self.layers)

    @property
    def params(self):
        """{layer name: {param name: array}} of the layers that have parameters (a model used as
        a layer: {its layer name: {...}})."""
        return {layer.name: layer.params for layer in self.layers if layer.has_weights}

    @params.setter
    def params(self, value):
        for layer in self.layers:
            if layer.name in value:
                layer.params = value[layer.name]

    def trainable_params(self, params=None):
        """The entries of `params` (default: the current ones) that an optimizer updates."""
        params = self.params if params is None else params
        subsets = {layer.name: layer.trainable_params(params[layer.name]) for layer in self.layers if layer.name in params}
        return {name: p for name, p in subsets.items() if p}

    def trainable_flags(self):
        """Every layer's `trainable`, nested models' layers too (compiled steps depend on them)."""
        return tuple(layer.trainable_flags() for layer in self.layers)

    def state_updates(self, params, caches):
        """`params` with the non-trainable parameters a training forward pass updated (moving
        statistics), from its caches."""
        updated = dict(params)
        for node, cache in zip(self.nodes, caches):
            new = node.layer.state_updates(params.get(node.layer.name, {}), cache)
            if new:
                updated[node.layer.name] = {**updated[node.layer.name], **new}
        return updated

    def to_current_backend(self):
        """Move the parameters to the current backend if they live on another; returns the name
        of the backend they came from, or None if they did not move."""
        source = self.backend_name
        if source in (None, _backend().name):
            return None
        self.params = transfer(self.params, source)
        self.backend_name = _backend().name
        return source

    def count_params(self, trainable_only=False):
        return sum(layer.count_params(trainable_only) for layer in self.layers)

    def get_weights(self):
        """Every layer's arrays as NumPy arrays: kernel then bias, layer by layer (Keras' order)."""
        return [w for layer in self.layers for w in layer.get_weights()]

    @property
    def num_weights(self):
        return sum(layer.num_weights for layer in self.layers)

    def check_weights(self, weights):
        """Raise unless `weights` are arrays of every layer's shapes, in get_weights order."""
        if not isinstance(weights, (list, tuple)):
            raise invalid("weights", "a list of arrays (as get_weights() returns)", weights, InvalidTypeError)
        if len(weights) != self.num_weights:
            raise invalid("weights", f"a list of {self.num_weights} arrays", f"a list of {len(weights)} arrays")
        start = 0
        for layer in self.layers:
            layer.check_weights(list(weights[start:start + layer.num_weights]))
            start += layer.num_weights

    def set_weights(self, weights):
        """Every shape is checked before any layer changes."""
        self.check_weights(weights)
        start = 0
        for layer in self.layers:
            if layer.num_weights:
                layer.set_weights(list(weights[start:start + layer.num_weights]))
            start += layer.num_weights

    # ----- the passes ----------------------------------------------------------------------------
    def forward(self, params, x, training, key):
        """(output, caches): every node in order; node i's random key is fold_in(key, i)."""
        values, caches = [x], []
        for i, node in enumerate(self.nodes):
            layer = node.layer
            args = [values[j] for j in node.inputs]
            node_key = random.fold_in(key, i) if key is not None and layer.needs_key else None
            y, cache = layer.forward(params.get(layer.name, {}), args if layer.multi_input else args[0],
                                     training=training, key=node_key)
            values.append(y)
            caches.append(cache)
        return values[-1], caches

    def preactivation(self, caches):
        """The last layer's pre-activation z (for a loss fused with its activation)."""
        return self.output_layer.preactivation(caches[-1])

    def backward(self, params, caches, dy, from_preactivation=False, need_dx=False):
        """(dL/dx of the graph's input or None, {layer name: {param name: dL/dparam}}) for
        dy = dL/d(output) (or dL/dz of the last layer's pre-activation): every node in reverse,
        summing where outputs fan out and over the calls of a reused layer. A node computes its
        dL/dx only where something reads it (a node fed by the input: where `need_dx`)."""
        grads, pending = {}, {len(self.nodes): dy}
        for i in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[i]
            d = pending.pop(i + 1, None)
            if d is None:
                continue
            layer, layer_params = node.layer, params.get(node.layer.name, {})
            previous, layer.needs_input_grad = layer.needs_input_grad, need_dx or any(j != 0 for j in node.inputs)
            try:
                if from_preactivation and i == len(self.nodes) - 1:
                    dx, g = layer.backward_from_preactivation(layer_params, caches[i], d)
                else:
                    dx, g = layer.backward(layer_params, caches[i], d)
            finally:
                layer.needs_input_grad = previous
            if g:
                grads[layer.name] = _add(grads[layer.name], g) if layer.name in grads else g
            for source, ds in zip(node.inputs, dx if layer.multi_input else [dx]):
                if ds is not None and (source != 0 or need_dx):
                    pending[source] = pending[source] + ds if source in pending else ds
        return pending.get(0), grads

    def penalty(self, params):
        """The layers' weight penalties summed (0.0 without regularizers)."""
        total = 0.0
        for layer in self.layers:
            if layer.name in params:
                total = total + layer.penalty(params[layer.name])
        return total

    def penalty_grads(self, params):
        """{layer name: {param name: gradient of its penalty}} of the regularized parameters."""
        grads = {layer.name: layer.penalty_grads(params[layer.name]) for layer in self.layers if layer.name in params}
        return {name: g for name, g in grads.items() if g}

    # ----- description ---------------------------------------------------------------------------
    def summary(self, name, print_fn=print, show_input=True):
        """Layer names, types, output shapes and parameter counts, as Keras prints them."""
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)),
                 f"{layer.count_params():,}") for layer in self.layers]
        if show_input:
            rows.insert(0, (f"{self.input_layer.name} (InputLayer)", str((None, *self.input_shape)), "0"))
        widths = (max(28, *(len(r[0]) + 2 for r in rows)), max(26, *(len(r[1]) + 2 for r in rows)), 12)
        line = "_" * sum(widths)
        total, trainable = self.count_params(), self.count_params(trainable_only=True)
        out = [f'Model: "{name}"', line,
               f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}",
               "=" * sum(widths)]
        for i, (a, b, c) in enumerate(rows):
            out.append(f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}")
            out.append("_" * sum(widths) if i < len(rows) - 1 else "=" * sum(widths))
        out += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}", line]
        print_fn("\n".join(out))

    def get_config(self):
        """The input shape, every layer serialized, and which layer each node calls on what."""
        position = {id(layer): i for i, layer in enumerate(self.layers)}
        return {"input_shape": list(self.input_shape),
                "layers": [_LAYERS.serialize(layer) for layer in self.layers],
                "nodes": [{"layer": position[id(node.layer)], "inputs": list(node.inputs)} for node in self.nodes]}

    @classmethod
    def from_config(cls, config):
        """The graph `get_config` described, with new (unbuilt, unparameterized) layers."""
        layers = [_LAYERS.deserialize(entry) for entry in config["layers"]]
        inputs = Input(tuple(config["input_shape"]))
        values = [inputs]
        for node in config["nodes"]:
            layer = layers[node["layer"]]
            args = [values[i] for i in node["inputs"]]
            values.append(layer(args if layer.multi_input else args[0]))
        return cls(inputs, values[-1])


def _add(a, b):
    return tree_map(lambda x, y: x + y, a, b)
