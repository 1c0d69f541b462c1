"""The graph of a model: its layer calls (nodes), shapes and parameters, and the forward and
backward passes through them (docs/architecture.md, "Graph, steps, trainer").

    graph = Graph(inputs, outputs)                     # symbolic tensors (or lists) of a functional model
    out, caches = graph.forward(params, x, training, key)
    dx, grads = graph.backward(params, caches, dy)     # grads: {layer name: {param name: gradient}}

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
    """One layer call: `layer` applied to the values at `inputs` (value i < k is the graph's input
    i, value k + j the output of node j, for k inputs)."""

    def __init__(self, layer, inputs):
        self.layer, self.inputs = layer, tuple(inputs)


def _tensors(value, name):
    """A list of symbolic tensors from one tensor, a list/tuple or a dict of them."""
    tensors = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(
        value, (list, tuple)) else [value]
    if not tensors or not all(isinstance(t, SymbolicTensor) for t in tensors):
        raise invalid(name, "a tensor (or a list of tensors) from portanet.Input and layer calls", value,
                      InvalidTypeError)
    return tensors


class Graph:
    """The layer calls from the inputs to the outputs, each node after the nodes it reads."""

    def __init__(self, inputs, outputs):
        inputs, outputs = _tensors(inputs, "inputs"), _tensors(outputs, "outputs")
        for t in inputs:
            if not isinstance(t.layer, InputLayer):
                raise invalid("inputs", "tensors returned by portanet.Input(shape)", t.layer.name, InvalidTypeError)
        names = [t.layer.name for t in inputs]
        if len(set(names)) != len(names):
            raise invalid("inputs", "distinct Input tensors", names)
        index, nodes = {id(t): i for i, t in enumerate(inputs)}, []

        def visit(tensor):
            if id(tensor) in index:
                return index[id(tensor)]
            if isinstance(tensor.layer, InputLayer):
                raise invalid("outputs", "tensors computed from the model's `inputs` only",
                              f"a tensor from another input ({tensor.layer.name})")
            sources = [visit(t) for t in tensor.inputs]
            nodes.append(Node(tensor.layer, sources))
            index[id(tensor)] = len(inputs) + len(nodes) - 1
            return index[id(tensor)]

        self.outputs = [visit(t) for t in outputs]  # the value index of each output
        self.nodes, self.input_layers = nodes, [t.layer for t in inputs]
        self.output_layers = [t.layer for t in outputs]
        self.placement = None  # where the parameters live, once drawn: (backend name, layout)

    # ----- structure -----------------------------------------------------------------------------
    @property
    def layers(self):
        """Every layer once, in call order (a reused layer appears once)."""
        return list({id(node.layer): node.layer for node in self.nodes}.values())

    @property
    def input_shapes(self):
        return [layer.shape for layer in self.input_layers]

    @property
    def input_names(self):
        return [layer.name for layer in self.input_layers]

    @property
    def input_shape(self):
        """One input's shape; a list of shapes for several inputs (as Keras)."""
        shapes = self.input_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shapes(self):
        return [self._value_shape(i) for i in self.outputs]

    @property
    def output_shape(self):
        shapes = self.output_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self):
        """Keras' names of the outputs: their layers' names."""
        return [layer.name for layer in self.output_layers]

    def _value_shape(self, i):
        k = len(self.input_layers)
        return self.input_layers[i].shape if i < k else self.nodes[i - k].layer.output_shape

    def output_activation(self, o=0):
        """The name of output o's activation where a loss may fuse with it: the output's layer has
        an activation and nothing but the loss reads the output (None otherwise)."""
        i, k = self.outputs[o], len(self.input_layers)
        if i < k or self.outputs.count(i) > 1 or any(i in node.inputs for node in self.nodes):
            return None
        layer = self.nodes[i - k].layer
        return layer.activation.name if isinstance(layer, ActivatedLayer) else None

    # ----- parameters ----------------------------------------------------------------------------
    def init_params(self, seed):
        """Draw every layer's weights from `seed`, on the host (NumPy), then move them to the
        current backend: the same seed gives bit-identical weights on every backend, and no
        backend compiles the random operations of the initialisation."""
        with _use_backend("numpy"):
            drawn = self.draw(random.key(seed))
        self.params = transfer(drawn, "numpy")
        self.placement = current_placement()

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
        """Move the parameters to the current backend (and data-parallel layout) if they live
        elsewhere; returns the name of the backend they came from, or None if they did not move."""
        if self.placement in (None, current_placement()):
            return None
        source = self.placement[0]
        self.params = transfer(self.params, source)
        self.placement = current_placement()
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
        """(outputs, caches) for x, one array per input (a list, or the array for one input):
        every node in order, node i's random key fold_in(key, i). The outputs are a list, or the
        array for one output."""
        values, caches = list(x) if len(self.input_layers) > 1 else [x], []
        for i, node in enumerate(self.nodes):
            layer = node.layer
            args = [values[j] for j in node.inputs]
            node_key = random.fold_in(key, i) if key is not None and layer.needs_key else None
            y, cache = layer.forward(params.get(layer.name, {}), args if layer.multi_input else args[0],
                                     training=training, key=node_key)
            values.append(y)
            caches.append(cache)
        outputs = [values[i] for i in self.outputs]
        return (outputs if len(outputs) > 1 else outputs[0]), caches

    def preactivation(self, caches, o=0):
        """Output o's pre-activation z (for a loss fused with its activation)."""
        node = self.outputs[o] - len(self.input_layers)
        return self.nodes[node].layer.preactivation(caches[node])

    def backward(self, params, caches, dy, fused=(), need_dx=False):
        """(dL/dx of the inputs (a list, or one array; None where nothing needs it), {layer name:
        {param name: dL/dparam}}) for dy = dL/d(outputs) (a list, or one array; None for an
        output without a loss); for the outputs listed in `fused`, dy is dL/dz of the output
        layer's pre-activation. Every node in reverse, summing where values fan out and over the
        calls of a reused layer. A node computes its dL/dx only where something reads it (a node
        fed by an input: where `need_dx`)."""
        k, pending, grads = len(self.input_layers), {}, {}
        from_preactivation = {self.outputs[o] for o in fused}
        for i, d in zip(self.outputs, dy if len(self.outputs) > 1 else [dy]):
            if d is not None:
                pending[i] = pending[i] + d if i in pending else d
        for n in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[n]
            d = pending.pop(k + n, None)
            if d is None:
                continue
            layer, layer_params = node.layer, params.get(node.layer.name, {})
            previous, layer.needs_input_grad = layer.needs_input_grad, need_dx or any(j >= k for j in node.inputs)
            try:
                if k + n in from_preactivation:
                    dx, g = layer.backward_from_preactivation(layer_params, caches[n], d)
                else:
                    dx, g = layer.backward(layer_params, caches[n], d)
            finally:
                layer.needs_input_grad = previous
            if g:
                grads[layer.name] = _add(grads[layer.name], g) if layer.name in grads else g
            for source, ds in zip(node.inputs, dx if layer.multi_input else [dx]):
                if ds is not None and (source >= k or need_dx):
                    pending[source] = pending[source] + ds if source in pending else ds
        dx = [pending.get(i) for i in range(k)]
        return (dx if k > 1 else dx[0]), grads

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
            rows[:0] = [(f"{layer.name} (InputLayer)", str((None, *layer.shape)), "0") for layer in self.input_layers]
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
        """The inputs, every layer serialized, which layer each node calls on what, and the
        outputs (value indices, as in Node)."""
        position = {id(layer): i for i, layer in enumerate(self.layers)}
        return {"inputs": [{"shape": list(layer.shape), "name": layer.name} for layer in self.input_layers],
                "layers": [_LAYERS.serialize(layer) for layer in self.layers],
                "nodes": [{"layer": position[id(node.layer)], "inputs": list(node.inputs)} for node in self.nodes],
                "outputs": list(self.outputs)}

    @classmethod
    def from_config(cls, config):
        """The graph `get_config` described, with new (unbuilt, unparameterized) layers. (Files
        before version 0.3 have one "input_shape" and their last node as the output.)"""
        layers = [_LAYERS.deserialize(entry) for entry in config["layers"]]
        specs = config["inputs"] if "inputs" in config else [{"shape": config["input_shape"]}]
        values = [Input(tuple(spec["shape"]), name=spec.get("name")) for spec in specs]
        inputs = list(values)
        for node in config["nodes"]:
            layer = layers[node["layer"]]
            args = [values[i] for i in node["inputs"]]
            values.append(layer(args if layer.multi_input else args[0]))
        outputs = [values[i] for i in config.get("outputs", [len(values) - 1])]
        return cls(inputs, outputs)


def current_placement():
    """(backend name, data-parallel layout) of arrays made now."""
    return _backend().name, _backend().layout


def _add(a, b):
    return tree_map(lambda x, y: x + y, a, b)
