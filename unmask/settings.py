"""Text settings → typed DecodeConfig values: the one parser behind `--set`, `--sweep` and per-field flags."""
from __future__ import annotations

import types
import typing
from typing import Any

from unmask.config import DecodeConfig
from unmask.errors import ConfigError


def field_types() -> dict[str, tuple[type, ...]]:
    """DecodeConfig field → the types its annotation allows, e.g. "steps" → (int, NoneType)."""
    hints = typing.get_type_hints(DecodeConfig)
    return {name: typing.get_args(h) if isinstance(h, types.UnionType) else (h,) for name, h in hints.items()}


def parse_value(text: str, kinds: tuple[type, ...] = (int, float, bool, type(None), str)) -> Any:
    """Text → the first of `kinds` it reads as: "none" → None, "true"/"false" → bool, numbers, else str."""
    text = text.strip()
    low = text.lower()
    if low in ("none", "null") and type(None) in kinds:
        return None
    if bool in kinds and low in ("true", "false", "yes", "no") + (("1", "0") if int not in kinds else ()):
        return low in ("true", "yes", "1")
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(text)
            except ValueError:
                pass
    if str in kinds:
        return text
    allowed = " or ".join(k.__name__ for k in kinds if k is not type(None))
    raise ConfigError(f"{text!r} is not {allowed}" + (" or none" if type(None) in kinds else ""))


def parse_field(key: str, text: str, flag: str) -> Any:
    kinds = field_types().get(key)
    if kinds is None:
        raise ConfigError(f"{flag}: unknown decode setting {key!r}; valid: {', '.join(DecodeConfig.field_names())}")
    try:
        return parse_value(text, kinds)
    except ConfigError as err:
        raise ConfigError(f"{flag} {key}: {err}") from None


def split_assignment(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"{flag} expects key=value, got {item!r}")
    return key.strip(), value


def parse_assignments(items: list[str] | None, flag: str = "--set", decode_fields: bool = True) -> dict[str, Any]:
    """["threshold=0.8", "cache=none"] → {"threshold": 0.8, "cache": "none"}; keys checked when decode_fields."""
    values: dict[str, Any] = {}
    for item in items or []:
        key, value = split_assignment(item, flag)
        key = key.replace("-", "_") if decode_fields else key
        values[key] = parse_field(key, value, flag) if decode_fields else parse_value(value)
    return values
