"""portanet's exceptions and the one message format they share (Keras style)."""


class PortanetError(Exception):
    """Base class of every error portanet raises on purpose."""


class InvalidArgumentError(PortanetError, ValueError):
    """An argument has the right type but a value portanet cannot use."""


class InvalidTypeError(PortanetError, TypeError):
    """An argument has a type portanet cannot use."""


class BackendUnavailableError(PortanetError, ImportError):
    """A known backend whose library (or device) is missing."""


class DeviceMemoryError(PortanetError, MemoryError):
    """The device ran out of memory during a step (the message suggests a smaller batch)."""


def message(argument, expected, received):
    """`Invalid value for `argument`. Expected <expected>. Received: argument=<received>`."""
    return f"Invalid value for `{argument}`. Expected {expected}. Received: {argument}={received!r}"


def invalid(argument, expected, received, error=InvalidArgumentError):
    """Build (not raise) the error for one bad argument, so callers write `raise invalid(...)`."""
    return error(message(argument, expected, received))
