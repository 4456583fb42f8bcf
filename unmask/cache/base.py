"""Cache ABC: a cache plans each forward (what to compute, what to reuse) and updates itself after it."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.registry import Registry


class Cache(ABC):
    """One cache instance serves one batch of requests from the first step to the last.

    Cost accounting (a counter, not a clock): `count` adds the positions x layers each forward computed,
    per active row (`positions_x_layers`, (B,) long on the device) and per forward (`step_costs`, host ints
    known from shapes). `peak_bytes` is the largest `nbytes()` seen after a step.

    Host values: a cache whose next plan depends on data (which rows open a new block, how many positions
    still need computing) returns them from `host_request` as a small long tensor; the engine fetches them
    in the same transfer as the finished flags (the one host sync per step) and hands them to `host_reply`.
    """

    positions_x_layers: Tensor | None = None
    step_costs: list[int]
    peak_bytes: int = 0

    @abstractmethod
    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        """Plan the next forward. window: (B, G) bool, the positions that may be committed this step."""

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        """Called after the step's commits were applied to `state`. scores: this step's (B, G) scores,
        -inf where the forward gave no logits (d2Cache ranks masked positions by them)."""

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget everything (rows=None) or the given rows' entries."""

    def nbytes(self) -> int:
        """Bytes of tensors this cache holds."""
        return 0

    def host_request(self, state: DecodeState) -> Tensor | None:
        """(k,) long device values the next `plan` needs on the host, or None. Called after `update`."""
        return None

    def host_reply(self, values: list[int]) -> None:
        """The values of `host_request`, read back with the step's one host sync."""

    def count(self, plan: Plan, state: DecodeState, n_layers: int, canvas_length: int) -> None:
        """Account one forward: positions computed x layers, for each row active in it (no host sync)."""
        q = canvas_length if plan.compute is None else plan.compute.shape[1]
        if self.positions_x_layers is None:
            self.positions_x_layers = torch.zeros_like(state.nfe)
            self.step_costs = []
        self.positions_x_layers = self.positions_x_layers + (q * n_layers) * (~state.finished).long()
        self.step_costs.append(q * n_layers)
        self.peak_bytes = max(self.peak_bytes, self.nbytes())


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
