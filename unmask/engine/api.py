"""The types that serving and benchmarking see: requests in, step outputs and completions out."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


BATCHING = ("continuous", "static")   # Engine(batching=...): requests join between steps, or the old pattern


class FinishReason(str, Enum):
    EOS = "eos"        # the answer ended with an EOS / end-of-turn token
    LENGTH = "length"  # gen_length tokens were generated without an EOS
    ABORT = "abort"    # the caller aborted the request (e.g. an HTTP client disconnected)
    ERROR = "error"    # the request failed; StepOutput.error / Completion.error says why


@dataclass
class Completion:
    """One request's result. token_ids are the generated tokens before the first EOS (prompt excluded)."""

    text: str
    token_ids: list[int]
    nfe: int
    finish_reason: str
    seconds: float
    computed: int = 0      # positions x layers the model computed for this request (a cost counter, not a clock)
    model_rows: int = 0    # model rows its forwards ran: nfe, or 2·nfe with guidance (its unconditional copy)
    cache_bytes: int = 0   # this request's share of its group's largest cache size in bytes
    seed: int | None = None  # the seed of the request's generator: pass it back to reproduce a sample
    prompt_tokens: int = 0
    error: str | None = None
    tokens_per_forward: float | None = None  # uniform-corruption models: counted as transformers counts it
    verifier_nfe: int = 0  # forwards of the verifier model (AR-verified decoding: apd, specdiff, guided); nfe
    # counts the dLLM's alone
    verifier_computed: int = 0  # positions x layers the verifier computed (its rows read); `computed` is the dLLM's

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepOutput:
    """What one `Engine.step()` produced for one request.

    new_token_ids: tokens that became final this step, left to right (the stream never sends a token twice
    and never one that could still change); tokens at and after the first EOS are not sent.
    canvas: the whole generated region this step (mask id where still masked), for requests that asked.
    completion: set when `finished`; `error` too when the request failed.
    """

    request_id: str
    new_token_ids: list[int] = field(default_factory=list)
    canvas: list[int] | None = None
    finished: bool = False
    completion: Completion | None = None
    error: str | None = None
