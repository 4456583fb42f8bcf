"""dKV-Cache-Decode (arXiv 2505.15781; horseee/dKV-Cache `llada_dkv_cache_decode.py`; §6 of METHODS.md).

A token's K/V stabilise only once it is decoded, and change at the decoding step itself, so its K/V enter the
cache one step late: the forward right after a token is decoded recomputes it (now with the decoded token as
input) and stores the result. Every `cache_reloading_step` steps (and at step 0) a full forward refreshes all.

Per row, canvas position c is recomputed in a reuse step when its cached K/V are stale (its input was masked
when last computed) or its hidden state predicts a masked token (c = P + g - shift for masked slot g: with
Dream's shift the state before a masked token is recomputed too). Rows compute different sets; Q is the longest set among active rows (read back with the step's one
host sync), shorter rows are padded with cached positions whose K/V are computed but not written.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache.base import CACHES, Cache, full_plan
from unmask.cache.kv_store import KVStore, KVView, attention_mask
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.models.spec import DiffusionSpec


@CACHES.register("delayed")
class DelayedCache(Cache):
    """Cache decoded tokens' K/V one step after decoding; full refresh every `cache_reloading_step` steps."""

    row_fields = ("store", "valid", "fresh", "need_rows")

    def __init__(self, spec: DiffusionSpec | None = None, cache_reloading_step: int = 8) -> None:
        self.attention = spec.attention if spec is not None else "full"
        self.reload = cache_reloading_step
        self.store = KVStore()
        self.valid: Tensor | None = None     # (B, L) bool: cached K/V were computed with the final token
        self.pending: tuple | None = None    # (compute (B, Q) | None, write (B, Q) | None, masked (B, Q))
        self.need_rows: list[int] = []       # host, per row: positions it needs recomputed next step
        self.fresh: list[bool] = []          # host, per row: joined since the last step (reload it)

    def needs(self, state: DecodeState, P: int, shift: int) -> Tensor:
        """(B, G) bool over generated slots g, computed at canvas index P + g - shift."""
        G = state.gen_length
        canvas_valid = self.valid[:, P - shift:P - shift + G]              # K/V of canvas P + g - shift
        return ~canvas_valid | state.is_masked                              # hidden state predicting token g

    @staticmethod
    def input_masked(canvas: Canvas, state: DecodeState) -> Tensor:
        """(B, L) bool: the canvas inputs that are [MASK] now."""
        prompt = torch.zeros_like(canvas.prompt, dtype=torch.bool)
        return torch.cat([prompt, state.is_masked], dim=1)

    def refresh_rows(self, state: DecodeState) -> list[bool]:
        """Host, per row: reload now (its own step count is a multiple of `cache_reloading_step`, or it is new)."""
        fresh = self.fresh if len(self.fresh) == len(state.row_steps) else [False] * len(state.row_steps)
        return [step % self.reload == 0 or bool(f) for step, f in zip(state.row_steps, fresh)]

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        P, shift, G = canvas.prompt_length, canvas.logit_shift, state.gen_length
        self.shift = shift
        refresh = self.refresh_rows(state)
        self.fresh = [False] * len(refresh)
        if not self.store or self.valid is None or any(refresh):
            write = None
            if self.store and self.valid is not None and not all(refresh):   # other rows write what they need
                needs = torch.zeros_like(canvas.key_mask)
                needs[:, P - shift:P - shift + G] = self.needs(state, P, shift)
                write = needs | torch.tensor(refresh, device=needs.device)[:, None]
            mask = attention_mask(canvas.key_mask, None, self.attention, canvas.positions)
            plan = full_plan(canvas, state, KVView(self.store, None, write, mask))
            self.pending = (None, write, self.input_masked(canvas, state))
            return plan
        needs = self.needs(state, P, shift)                                 # (B, G)
        idx = torch.arange(G, device=needs.device)
        need = max(1, max(self.need_rows))
        order = torch.where(needs, idx, idx + G).argsort(-1)[:, :need]     # needed slots first
        g = order.sort(-1).values                                           # (B, Q) distinct slots
        compute = P - shift + g                                             # (B, Q) canvas indices
        write = needs.gather(1, g)
        mask = attention_mask(canvas.key_mask, compute, self.attention, canvas.positions)
        self.pending = (compute, write, self.input_masked(canvas, state))
        view = KVView(self.store, compute, write, mask)
        return Plan(compute=compute, logits_at=torch.arange(g.shape[1], device=g.device).expand_as(g),
                    predicts=g, view=view)

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        """Positions computed with a decoded (or prompt) token as input now hold stable K/V."""
        compute, write, input_masked = self.pending                         # input_masked: (B, L) at plan time
        if compute is None:
            self.valid = ~input_masked if write is None else torch.where(write, ~input_masked, self.valid)
        else:
            fresh = torch.where(write, ~input_masked.gather(1, compute), self.valid.gather(1, compute))
            self.valid = self.valid.scatter(1, compute, fresh)
        self.pending = None

    def heavy_rows(self, state: DecodeState) -> list[bool]:
        return self.refresh_rows(state)

    def host_request(self, state: DecodeState) -> Tensor:
        """Per row: the positions it needs recomputed next step."""
        P = self.valid.shape[1] - state.gen_length
        return self.needs(state, P, self.shift).sum(-1).long()

    def host_reply(self, values: list[int]) -> None:
        self.need_rows = values

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None:
            self.store.clear()
            self.valid, self.fresh, self.need_rows = None, [], []
            return
        for r in rows.flatten().tolist():   # not a per-step path: rows joined
            if r < len(self.fresh):
                self.fresh[r] = True

    def nbytes(self) -> int:
        return self.store.nbytes() + (self.valid.numel() if self.valid is not None else 0)
