"""Models: the Keras-style front (model, sequential) over the graph of layer calls (graph), and saving."""
from .model import Model, load_model
from .sequential import Sequential
