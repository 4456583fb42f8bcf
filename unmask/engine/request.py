"""RequestState: everything about one request, on the host. Nothing about a request lives in a batch scalar."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from unmask.config import DecodeConfig


@dataclass
class RequestState:
    """One request from `add_request` to its last `StepOutput`.

    Its row in a group holds the device side (canvas row, DecodeState row, cache row); this holds the rest:
    its config and seeded generator, its clock, what the stream has sent, and its costs.
    """

    request_id: str
    prompt_ids: list[int]
    config: DecodeConfig
    seed: int
    generator: torch.Generator
    stream_canvas: bool = False
    arrived: float = field(default_factory=time.perf_counter)
    sent: int = 0            # leading final tokens already sent as StepOutput.new_token_ids
    computed: int = 0        # positions x layers computed for this request
    model_rows: int = 0      # model rows its forwards ran (NFE, times 2 with guidance)
    cache_bytes: int = 0     # largest share of its group's cache it held
    verifier_nfe: int = 0    # forwards of the verifier model (AR-verified decoding), beside the dLLM's NFE
    verifier_computed: int = 0  # positions x layers the verifier computed for this request, beside `computed`
    aborted: bool = False
    slot: int | None = None  # its row of the runner's K/V pool, from admission to finish (None: no pool)
    group_key: tuple = field(init=False)

    def __post_init__(self) -> None:
        # Requests with equal keys share one forward: the same config up to the seed (each row has its own).
        self.group_key = tuple((k, v) for k, v in sorted(self.config.to_dict().items()) if k != "seed")

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)
