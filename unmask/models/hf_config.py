"""Typed reads of a checkpoint's config.json: every value checked for type and range, the error naming its key.

The architecture modules read config.json only through these, so a `d_model` of 64.0 or "64", a `rope_theta`
of -1 or NaN, or a context of 10¹² positions fail here with a ValueError the loader turns into a
CheckpointError ("config.json: d_model must be an integer, got 64.0 (float)"). A missing required key raises
KeyError, which the loader reports as such.
"""
from __future__ import annotations

import math
from typing import Any

MAX_SIZE = 2**31 - 1   # widths, counts and vocabulary sizes
MAX_CONTEXT = 2**24    # positions: 16.7 M, beyond any published context (the rotary table is checked by bytes too)
_REQUIRED = object()


def _show(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 40 else text[:20] + "…") + f" ({type(value).__name__})"


def _get(cfg: dict[str, Any], key: str, default: Any) -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if default is _REQUIRED:
        raise KeyError(key)
    return default


def int_key(cfg: dict[str, Any], key: str, default: Any = _REQUIRED, minimum: int = 1,
            maximum: int = MAX_SIZE) -> int:
    """cfg[key] as an int in [minimum, maximum]; bools, floats (even 64.0) and strings are refused."""
    value = _get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {_show(value)}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{key} must be in [{minimum}, {maximum}], got {value}")
    return value


def float_key(cfg: dict[str, Any], key: str, default: Any = _REQUIRED) -> float:
    """cfg[key] as a finite float > 0 (ints accepted, bools and strings refused)."""
    value = _get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {_show(value)}")
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.inf
    if not (math.isfinite(as_float) and as_float > 0):
        raise ValueError(f"{key} must be a finite number > 0, got {value}")
    return as_float


def bool_key(cfg: dict[str, Any], key: str, default: bool) -> bool:
    """cfg[key] as a bool; "false" (a string) or 0 would otherwise read as the wrong switch."""
    value = _get(cfg, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {_show(value)}")
    return value


def token_ids_key(cfg: dict[str, Any], key: str, default: Any) -> tuple[int, ...]:
    """A token id or a list of them (Hugging Face allows both for eos_token_id) as a tuple of ints ≥ 0."""
    value = _get(cfg, key, default)
    values = value if isinstance(value, list) and value else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{key} must be a token id (an int ≥ 0) or a list of them, got {_show(value)}")
    return tuple(values)


def token_id_key(cfg: dict[str, Any], key: str, default: Any) -> int:
    value = _get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a token id (an int ≥ 0), got {_show(value)}")
    return value
