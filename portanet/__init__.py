"""portanet: Keras-style neural networks with hand-written backprop on any Array API backend."""
from . import backend, random
from ._version import __version__
from .backend import floatx, set_floatx
from .errors import BackendUnavailableError, InvalidArgumentError, InvalidTypeError, PortanetError

backend._init_from_environment()
