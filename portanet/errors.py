"""portanet's exceptions, the one message format they share (Keras style), and the argument
checks that raise them."""
import math
import numbers


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


class DatasetError(PortanetError):
    """A dataset could not be loaded."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No complete copy of a dataset was found (and none could be downloaded).

    The message lists every place that was searched and how to get the files."""


class CorruptDatasetError(DatasetError, ValueError):
    """A dataset file exists but is not what it should be (bad header, truncated, unsafe archive)."""


class ChecksumError(CorruptDatasetError):
    """A downloaded file's SHA-256 differs from the known digest; the file was not kept."""


class MissingDependencyError(PortanetError, ImportError):
    """An optional dependency a loader needs is not installed."""


def message(argument, expected, received):
    """`Invalid value for `argument`. Expected <expected>. Received: argument=<received>`."""
    return f"Invalid value for `{argument}`. Expected {expected}. Received: {argument}={received!r}"


def invalid(argument, expected, received, error=InvalidArgumentError):
    """Build (not raise) the error for one bad argument, so callers write `raise invalid(...)`."""
    return error(message(argument, expected, received))


def is_number(value):
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name, value, expected="a non-negative float", minimum=0.0, strict_minimum=False):
    """`value` as a finite float >= minimum (> minimum with `strict_minimum`); else the error,
    naming argument `name` and what was `expected`."""
    if not is_number(value):
        raise invalid(name, expected, value, InvalidTypeError)
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict_minimum and number == minimum):
        raise invalid(name, expected, value)
    return number


def check_bool(name, value):
    if not isinstance(value, bool):
        raise invalid(name, "a bool (True or False)", value, InvalidTypeError)
    return value


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise invalid(name, "a positive int", value)
    return value


def check_non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(name, "a non-negative int", value)
    return value
