"""Models: the Keras-style front (model) over the graph of layer calls (graph), and saving."""
from .model import Model, Sequential, load_model
