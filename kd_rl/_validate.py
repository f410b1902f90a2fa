"""Checks for the integer settings every module takes (sizes, steps, counts), plain numbers and activations."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value, minimum: int = 1, allow_none: bool = False) -> int | None:
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
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return int(value)


def check_float(name: str, value) -> float:
    """``value`` as a finite Python float, or ``ValueError`` naming ``name``.

    Example:
        >>> check_float("stop_return", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: stop_return must be a finite number, got nan
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_activation(activation: str) -> str:
    """``activation`` unchanged if Keras knows the name, else ``ValueError`` naming it.

    Example:
        >>> check_activation("tanhh")
        Traceback (most recent call last):
        ...
        ValueError: activation must be a Keras activation name, got 'tanhh'
    """
    import keras

    try:
        keras.activations.get(activation)
    except ValueError:
        raise ValueError(f"activation must be a Keras activation name, got {activation!r}") from None
    return activation
