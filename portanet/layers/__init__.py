"""Layers (Keras names). Images are NCHW."""
from .base import REGISTRY, ActivatedLayer, Layer, SymbolicTensor, WeightedLayer
from .conv import Conv2D, Convolution2D
from .core import Activation, Add, Concatenate, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

deserialize = REGISTRY.deserialize  # only the layer classes above can be named by a file
