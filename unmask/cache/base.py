"""Cache ABC: a cache plans each forward (what to compute, what to reuse) and updates itself after it."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.registry import Registry


class Cache(ABC):
    """One cache instance serves one batch of requests from the first step to the last."""

    @abstractmethod
    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        """Plan the next forward. window: (B, G) bool, the positions that may be committed this step."""

    def update(self, plan: Plan, state: DecodeState) -> None:
        """Called after the step's commits were applied to `state`."""

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget everything (rows=None) or the given rows' entries."""

    def nbytes(self) -> int:
        """Bytes of tensors this cache holds."""
        return 0


CACHES: Registry[type[Cache]] = Registry("cache")


def full_plan(canvas: Canvas, state: DecodeState, view) -> Plan:
    """Compute every canvas position; logits for the whole generation region (shift applied)."""
    B, P, G = state.tokens.shape[0], canvas.prompt_length, state.gen_length
    predicts = torch.arange(G, device=state.tokens.device).expand(B, G)
    return Plan(compute=None, logits_at=predicts + (P - canvas.logit_shift), predicts=predicts, view=view)


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """x: (B, L, ...) gathered at index (B, Q) along dim 1."""
    return torch.gather(x, 1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


__all__ = ["CACHES", "Cache", "Canvas", "Plan", "full_plan", "gather_rows", "Tensor"]
