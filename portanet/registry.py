"""Names and configs: one registry mechanism for every kind of object a user can name.

Activations, initializers, regularizers, losses, metrics, optimizers, schedules and layers each
have one `Registry`. It turns what a user (or a model file) gives into an object, and an object
into the JSON-able form files keep, in Keras' shape:

    optimizers.get("adam")                                    # a name: the object, with its defaults
    optimizers.get({"class_name": "Adam", "config": {...}})   # a serialized object
    optimizers.get(Adam(1e-3))                                # an object: returned as it is
    optimizers.serialize(opt) == {"class_name": "Adam", "config": opt.get_config()}
    optimizers.deserialize(optimizers.serialize(opt))         # an equal object

An unknown name is an error listing the valid ones. Only registered classes can be named, so a
file cannot make portanet build anything else (docs/architecture.md, "Names and configs").
"""
import re

from .errors import InvalidTypeError, invalid


def snake_case(name):
    """Keras' names from class names: Dense -> dense, Conv2D -> conv2d, MaxPooling2D ->
    max_pooling2d, GlorotUniform -> glorot_uniform."""
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


class Serializable:
    """An object rebuilt from its constructor's arguments: `get_config()` returns them (JSON-able),
    `from_config(config)` calls the constructor with them."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Registry:
    """The named objects of one kind.

    Args:
        kind: what the objects are, for messages ("optimizer").
        base: the class every object of the kind derives from.
        argument: the argument named in errors (default `kind`).
        legacy: a function turning a config of an older shape into {"class_name", "config"}.
    """

    def __init__(self, kind, base, argument=None, legacy=None):
        self.kind, self.base, self.argument, self.legacy = kind, base, argument or kind, legacy
        self.classes = {}   # class name -> class
        self.names = {}     # short name -> function making the object with its defaults

    def register(self, *names):
        """Class decorator: the class is known by its own name and by `names`."""
        def add(cls):
            self.classes[cls.__name__] = cls
            for name in names:
                self.names[name] = cls
            return cls
        return add

    def name(self, name, make):
        """`name` makes the object `make()` (a preset, e.g. "glorot_uniform")."""
        self.names[name] = make

    def valid_names(self):
        return sorted(self.names or self.classes)

    def get(self, identifier):
        """The object for a name, a serialized config, or an object of the kind (returned as is)."""
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            make = self.names.get(identifier) or self.classes.get(identifier)
            if make is None:
                raise invalid(self.argument, f"one of {self.valid_names()}", identifier)
            return make()
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        raise invalid(self.argument, f"a name (one of {self.valid_names()}), a config dict or a "
                      f"{self.base.__module__}.{self.base.__name__}", identifier, InvalidTypeError)

    def serialize(self, obj):
        """{"class_name": ..., "config": ...} of an object of the kind."""
        if not isinstance(obj, self.base):
            raise invalid(self.argument, f"a {self.base.__module__}.{self.base.__name__}", obj, InvalidTypeError)
        return {"class_name": type(obj).__name__, "config": obj.get_config()}

    def deserialize(self, config):
        """The object `serialize` described (or, through `legacy`, an older description of it)."""
        if self.legacy is not None:
            config = self.legacy(config)
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise invalid(self.argument, 'a dict {"class_name": ..., "config": {...}}', config, InvalidTypeError)
        name = config["class_name"]
        cls = self.classes.get(name) or self.names.get(name)
        if not isinstance(cls, type):
            raise invalid("class_name", f"the name of a portanet {self.kind} class, one of {sorted(self.classes)}",
                          name)
        inner = config.get("config") or {}
        if not isinstance(inner, dict):
            raise invalid("config", f"a dict of the {self.kind}'s constructor arguments", inner, InvalidTypeError)
        return cls.from_config(dict(inner))
