"""Sequential: a plain stack of layers (a model whose graph is a chain)."""
from ..errors import InvalidTypeError, invalid
from ..layers import REGISTRY as LAYERS
from ..layers.base import Layer, SymbolicTensor, unique_name
from ..layers.core import Input, InputLayer
from .graph import Graph
from .model import Model


@LAYERS.register()
class Sequential(Model):
    """A plain stack of layers: `Sequential([Input((784,)), Dense(40, activation="relu"), ...])`."""

    summary_shows_input = False

    def __init__(self, layers: list | None = None, name: str | None = None):
        super().__init__(name=name)
        self._stack, self._input = [], None
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise invalid("layers", "a list of layers", layers, InvalidTypeError)
            for layer in layers:
                self.add(layer)

    def add(self, layer: Layer | SymbolicTensor) -> None:
        """Append a layer (or a portanet.Input declaring the example shape)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            if self._stack or self._input is not None:
                raise invalid("layer", "an Input only as the first entry", layer)
            self._input = layer
            return
        if isinstance(layer, InputLayer):
            return self.add(SymbolicTensor(layer.shape, layer))
        if not isinstance(layer, Layer):
            raise invalid("layer", "a portanet layer", layer, InvalidTypeError)
        if layer.multi_input:
            raise invalid("layer", "a single-input layer (use the functional Model for Add/Concatenate)",
                          layer.name)
        self._stack.append(layer)
        shape = self._input.shape if self._input is not None else self._stack[0].declared_input_shape
        if shape is not None:
            self._build_from_shape(shape)

    @property
    def layers(self):
        return list(self._stack)

    @classmethod
    def from_config(cls, config):
        layers = [LAYERS.deserialize(entry) for entry in config["layers"]]
        shape = config["inputs"][0]["shape"] if "inputs" in config else config["input_shape"]
        return cls([Input(tuple(shape)), *layers], name=config.get("name"))

    def pop(self) -> Layer:
        """Remove the last layer and return it."""
        layer = self._stack.pop()
        self.graph = None
        if self._stack and self._input is not None:
            self._build_from_shape(self._input.shape)
        return layer

    def _build_from_shape(self, shape):
        if not self._stack:
            raise invalid("layers", "at least one layer before the model is used", [])
        if self._input is None:
            self._input = SymbolicTensor(shape, InputLayer(shape, name=unique_name("input_layer")))
        tensor = self._input
        for layer in self._stack:
            tensor = layer(tensor)
        self.graph = Graph(self._input, tensor)
        for head in self.heads or ():
            head.name = self.output_names[0]  # the output's name once the last layer is known
            self._check_loss_fits_output(head)
