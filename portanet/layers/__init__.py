"""Layers (Keras names). Images are channels first (NCHW) unless `data_format` (or
pn.config.set_image_data_format) says "channels_last"."""
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import REGISTRY, ActivatedLayer, Layer, SymbolicTensor, WeightedLayer
from .conv import Conv1D, Conv2D, Conv2DTranspose, Convolution1D, Convolution2D, Convolution2DTranspose
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, dot, maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization, LayerNormalization, Normalization, Rescaling
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .reshaping import Cropping2D, UpSampling2D, ZeroPadding2D

deserialize = REGISTRY.deserialize  # only the layer classes registered can be named by a file
