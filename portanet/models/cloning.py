"""Models from descriptions: `model_from_json`, and `clone_model` (Keras' names)."""
import json

from ..errors import InvalidTypeError, invalid
from ..layers import REGISTRY as LAYERS
from ..layers.core import Input
from .model import Model
from .sequential import Sequential


def model_from_json(json_string: str) -> Model:
    """The model `model.to_json()` described: the same architecture, new weights."""
    try:
        spec = json.loads(json_string)
    except (TypeError, ValueError) as error:
        raise invalid("json_string", "the JSON text of model.to_json()", str(json_string)[:80]) from error
    model = LAYERS.deserialize(spec)
    if not isinstance(model, Model):
        raise invalid("json_string", "the description of a Model or Sequential", spec.get("class_name"),
                      InvalidTypeError)
    return model


def clone_model(model: Model, clone_function=None) -> Model:
    """A model of the same architecture with new layers (fresh weights, drawn when first used),
    as Keras' clone_model: each layer is `clone_function(layer)` (default: the layer rebuilt from
    its config). Copy the weights with `clone.set_weights(model.get_weights())`."""
    if not isinstance(model, Model):
        raise invalid("model", "a portanet Model or Sequential", model, InvalidTypeError)
    clone_function = clone_function or (lambda layer: LAYERS.deserialize(LAYERS.serialize(layer)))
    if isinstance(model, Sequential):
        layers = [clone_function(layer) for layer in model.layers]
        inputs = [Input(model.input_shape)] if model.graph is not None else []
        return Sequential([*inputs, *layers], name=model.name)
    graph = model.graph
    clones = {id(layer): clone_function(layer) for layer in graph.layers}
    values = [Input(shape, name=name) for shape, name in zip(graph.input_shapes, graph.input_names)]
    inputs = list(values)
    for node in graph.nodes:
        layer, args = clones[id(node.layer)], [values[i] for i in node.inputs]
        values.append(layer(args if layer.multi_input else args[0]))
    outputs = [values[i] for i in graph.outputs]
    return Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                 name=model.name)
