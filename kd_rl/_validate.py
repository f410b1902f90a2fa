"""Checks for the settings every module takes: sizes, steps, counts, seeds, plain numbers, activations, memory."""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence

import numpy as np

from kd_rl.errors import KdRlError


def check_int(name: str, value, minimum: int = 1, allow_none: bool = False, maximum: int | None = None) -> int | None:
    """``value`` as a Python int, or ``ValueError`` naming ``name`` and the rule.

    Booleans are refused (``True`` is not a size). With ``allow_none``, None
    passes through unchanged.

    Example:
        >>> check_int("steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: steps must be an int >= 1, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        rule = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise KdRlError(f"{name} must be {rule}, got {value!r}")
    if maximum is not None and value > maximum:
        raise KdRlError(f"{name} must be an int from {minimum} to {maximum}, got {value!r}")
    return int(value)


#: Seeds are 32-bit: TensorFlow's and NumPy's global seeds take no more.
MAX_SEED = 2**32 - 1


def check_seed(value, name: str = "seed") -> int:
    """``value`` as a seed: an int from 0 to `MAX_SEED`, or ``ValueError`` naming ``name``."""
    return check_int(name, value, minimum=0, maximum=MAX_SEED)


def check_float(name: str, value) -> float:
    """``value`` as a finite Python float, or ``ValueError`` naming ``name``.

    Example:
        >>> check_float("stop_return", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: stop_return must be a finite number, got nan
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise KdRlError(f"{name} must be a finite number, got {value!r}")
    if not np.isfinite(value):
        raise KdRlError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_activation(activation: str) -> str:
    """``activation`` unchanged if Keras knows the name, else ``ValueError`` naming it.

    Example:
        >>> check_activation("tanhh")
        Traceback (most recent call last):
        ...
        ValueError: activation must be a Keras activation name, got 'tanhh'
    """
    import keras  # here, not at the top: kd_rl.config imports this module, and `kd-rl --help` loads no Keras

    try:
        keras.activations.get(activation)
    except ValueError:
        raise KdRlError(f"activation must be a Keras activation name, got {activation!r}") from None
    return activation


def available_memory_bytes() -> int:
    """Memory this process can still take: ``MemAvailable`` of /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**63


def format_bytes(nbytes: float) -> str:
    """``nbytes`` for a person: ``"24.0 TB"``, ``"512.0 MB"``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def check_memory(what: str, nbytes: float) -> None:
    """Refuse, before allocating it, what cannot fit in this machine's available memory.

    Args:
        what: The setting and its value, as the user gave it (``"buffer_size=10**12"``).
        nbytes: The bytes it would take.

    Raises:
        ValueError: Naming ``what``, the bytes it needs and the bytes available.
    """
    available = available_memory_bytes()
    if nbytes > available:
        raise KdRlError(
            f"{what} would take {nbytes:.3g} bytes ({format_bytes(nbytes)}) of memory; this machine has "
            f"{format_bytes(available)} available: choose a smaller value"
        )


def check_temperature(temperature) -> float:
    """Return ``temperature`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise KdRlError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise KdRlError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def normalise_hidden_units(hidden_units: int | Sequence[int]) -> tuple[int, ...]:
    """Hidden layer widths as a tuple of positive ints: ``50`` -> ``(50,)``, ``[64, 64]`` -> ``(64, 64)``.

    Raises:
        ValueError: For a bool, a non-integer or a width <= 0, naming ``hidden_units``.
    """
    if isinstance(hidden_units, bool | np.bool_):
        raise KdRlError(f"hidden_units must be a positive int or a sequence of them, got {hidden_units!r}")
    if isinstance(hidden_units, int | np.integer):
        units = (int(hidden_units),)
    else:
        try:
            units = tuple(hidden_units)
        except TypeError:
            raise KdRlError(
                f"hidden_units must be a positive int or a sequence of them, got {hidden_units!r}"
            ) from None
    for u in units:
        if isinstance(u, bool | np.bool_) or not isinstance(u, int | np.integer) or u <= 0:
            raise KdRlError(f"hidden_units must contain only positive ints, got {hidden_units!r}")
    return tuple(int(u) for u in units)


def normalise_conv_layers(conv_layers) -> tuple[tuple[int, int, int], ...]:
    """Convolutions as a tuple of ``(filters, kernel_size, stride)`` triples of positive ints.

    ``[[16, 3, 1]]`` and ``[(32, 8, 4), (64, 4, 2)]`` are accepted; ``None``
    or ``[]`` means no convolutions (an MLP).

    Raises:
        ValueError: For anything else, naming ``conv_layers``.
    """
    if conv_layers is None:
        return ()
    message = (
        "conv_layers must be a sequence of (filters, kernel_size, stride) triples of positive ints, "
        f"e.g. [[16, 3, 1]], got {conv_layers!r}"
    )
    if isinstance(conv_layers, str | bytes):
        raise KdRlError(message)
    try:
        triples = [tuple(layer) for layer in conv_layers]
    except TypeError:
        raise KdRlError(message) from None
    for triple in triples:
        if len(triple) != 3 or any(
            isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or v <= 0 for v in triple
        ):
            raise KdRlError(message)
    return tuple(tuple(int(v) for v in triple) for triple in triples)


def check_observation_shape(shape) -> tuple[int, ...] | None:
    """An observation's shape as a tuple of positive ints (``(10, 10, 4)``), or None for None.

    Raises:
        ValueError: For an empty shape or an entry that is not a positive int.
    """
    if shape is None:
        return None
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if not dims or any(isinstance(d, bool | np.bool_) or not isinstance(d, int | np.integer) or d <= 0 for d in dims):
        raise KdRlError(f"observation_shape must be a non-empty sequence of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def conv_output_shape(observation_shape, conv_layers) -> tuple[int, int, int]:
    """``(height, width, channels)`` after ``conv_layers`` (``valid`` padding) on frames of ``observation_shape``.

    Raises:
        ValueError: If the convolutions shrink the frame to nothing.
    """
    height, width, channels = observation_shape
    for filters, kernel, stride in conv_layers:  # 'valid' padding: each convolution shrinks the image
        height, width, channels = (height - kernel) // stride + 1, (width - kernel) // stride + 1, filters
        if height < 1 or width < 1:
            raise KdRlError(
                f"conv_layers={[list(c) for c in conv_layers]} shrink observations of shape "
                f"{tuple(observation_shape)} to nothing: use smaller kernels or strides"
            )
    return height, width, channels


def parse_index_ranges(text: str) -> tuple[int, ...]:
    """Observation indices from ``"0:5,8"``: comma-separated indices and half-open ``start:stop`` ranges, as in Python.

    Raises:
        ValueError: For an empty or malformed item, naming it.
    """
    indices: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        start, colon, stop = item.partition(":")
        try:
            if colon:
                first, last = int(start), int(stop)
                if last <= first:
                    raise ValueError
                indices.extend(range(first, last))
            else:
                indices.append(int(item))
        except ValueError:
            raise KdRlError(
                f"observation indices must be comma-separated indices or start:stop ranges (stop > start) "
                f"such as 0:5,8; got {item!r} in {text!r}"
            ) from None
    return tuple(indices)


def normalise_observation_indices(indices, observation_dim: int | None = None) -> tuple[int, ...] | None:
    """``indices`` (a sequence of ints, or a string for `parse_index_ranges`) as a tuple, checked; None stays None.

    Raises:
        ValueError: For no index, a repeated one, a negative one, or one at or past ``observation_dim``.
    """
    if indices is None:
        return None
    if isinstance(indices, str):
        indices = parse_index_ranges(indices)
    try:
        given = [operator.index(i) for i in indices]
    except TypeError:
        raise KdRlError(f"observation indices must be ints, got {indices!r}") from None
    if not given:
        raise KdRlError("observation indices must name at least one feature")
    repeated = sorted({i for i in given if given.count(i) > 1})
    if repeated:
        raise KdRlError(f"observation indices may name each feature once; repeated: {repeated}")
    if min(given) < 0:
        raise KdRlError(f"observation indices must be >= 0, got {min(given)}")
    if observation_dim is not None and max(given) >= observation_dim:
        outside = [i for i in given if i >= observation_dim]
        raise KdRlError(
            f"observation indices {outside} are outside the observation's {observation_dim} features "
            f"(0 to {observation_dim - 1})"
        )
    return tuple(given)


def check_noise(name: str, value) -> float:
    """A noise standard deviation: a finite float >= 0."""
    value = check_float(name, value)
    if value < 0:
        raise KdRlError(f"{name} must be >= 0, got {value}")
    return value
