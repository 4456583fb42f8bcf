"""The types that serving and benchmarking see: requests in, completions out."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class FinishReason(str, Enum):
    EOS = "eos"        # the answer ended with an EOS / end-of-turn token
    LENGTH = "length"  # gen_length tokens were generated without an EOS


@dataclass
class Completion:
    """One request's result. token_ids are the generated tokens before the first EOS (prompt excluded)."""

    text: str
    token_ids: list[int]
    nfe: int
    finish_reason: str
    seconds: float
    computed: int = 0      # positions x layers the model computed for this request (a cost counter, not a clock)
    cache_bytes: int = 0   # this request's share of the cache's peak size in bytes (batch peak / batch size)

    def to_dict(self) -> dict:
        return asdict(self)
