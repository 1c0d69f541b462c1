"""Models: the Keras-style front (model, sequential, with the training API in fitting) over the
graph of layer calls (graph), saving, and model descriptions (cloning)."""
from .cloning import clone_model, model_from_json
from .model import Model, load_model
from .sequential import Sequential
