"""Layers (Keras names). Images are NCHW."""
from .base import ActivatedLayer, Layer, SymbolicTensor, WeightedLayer
from .core import Activation, Add, Concatenate, Dense, Dropout, Flatten, Input, InputLayer, Reshape
