"""Canvas and Plan: what one forward sees (the whole sequence) and what it computes (a plan from a cache)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unmask.decoding.state import DecodeState
from unmask.models.cache_view import CacheView


@dataclass
class Canvas:
    """The fixed part of a batch: left-padded prompts and per-token positions over prompt + generation.

    prompt: (B, P) long; key_mask: (B, P + G) bool, False on left padding; positions: (B, P + G) long.
    """

    prompt: Tensor
    key_mask: Tensor
    positions: Tensor
    logit_shift: int

    @property
    def prompt_length(self) -> int:
        return self.prompt.shape[1]

    def ids(self, state: DecodeState, out: Tensor | None = None) -> Tensor:
        """(B, P + G) long: prompt followed by the current generated tokens (masks included); into `out` if given."""
        return torch.cat([self.prompt, state.tokens], dim=1, out=out)

    def select(self, rows: list[int]) -> "Canvas":
        index = torch.tensor(rows, dtype=torch.long, device=self.prompt.device)
        return Canvas(self.prompt.index_select(0, index), self.key_mask.index_select(0, index),
                      self.positions.index_select(0, index), self.logit_shift)

    def hiding(self, visible: Tensor) -> "Canvas":
        """The canvas with generated positions outside `visible` (B, G) bool dropped from every query's keys
        (padding-like: their own outputs are computed but read by nothing)."""
        keep = torch.cat([torch.ones_like(self.key_mask[:, :self.prompt_length]), visible], 1)
        return Canvas(self.prompt, self.key_mask & keep, self.positions, self.logit_shift)

    @staticmethod
    def cat(a: "Canvas", b: "Canvas") -> "Canvas":
        return Canvas(torch.cat([a.prompt, b.prompt]), torch.cat([a.key_mask, b.key_mask]),
                      torch.cat([a.positions, b.positions]), a.logit_shift)


@dataclass
class Plan:
    """One forward: which canvas positions run through the model, and which of them give logits.

    compute: (B, Q) long canvas indices, or None for the whole canvas.
    logits_at: (B, N) long indices into the Q computed rows whose logits are needed.
    predicts: (B, N) long generated-region positions those logits predict (logit shift applied).
    view: the CacheView the model reads and writes K/V through.
    row_cost: (B,) long positions x layers each row needs computed, all its passes together (None: Q x layers
    x row_passes). A cache may fill it
    in `update`, after the forward, when the forward decides it.
    step_cost: host int, positions x layers the forward computes (None: B-independent Q x layers).
    row_passes: copies of each row in the forward (1; 2 with guidance's unconditional copy).
    """

    compute: Tensor | None
    logits_at: Tensor
    predicts: Tensor
    view: CacheView
    row_cost: Tensor | None = None
    step_cost: int | None = None
    row_passes: int = 1
