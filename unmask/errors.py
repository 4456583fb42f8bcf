"""The exceptions unmask raises at its boundaries: every user-facing error is an `UnmaskError`."""
from __future__ import annotations


class UnmaskError(Exception):
    """Base class of every error unmask raises on purpose."""


class ConfigError(UnmaskError, ValueError):
    """A decoding/engine configuration is invalid (unknown key, bad value, impossible combination)."""


class CheckpointError(UnmaskError):
    """A checkpoint cannot be found, or its tensors do not match its config."""


class RequestError(UnmaskError, ValueError):
    """A request is malformed or too large; `status` is the HTTP status a server should answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class GenerationError(UnmaskError):
    """A request failed while decoding (e.g. the model produced non-finite logits)."""
