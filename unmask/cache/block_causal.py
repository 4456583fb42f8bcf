"""Exact K/V cache for block-causal models (BD3-LM arXiv 2503.09573 §15, Fast-dLLM v2 arXiv 2509.26328 §4).

On a model whose attention is causal between blocks and bidirectional inside one, a finished block's K/V
depend only on finished blocks, so they are exact forever. Each step a row computes only:
* the model block holding its current decode window: the window is that block, or one of its sub-blocks
  (block_length a divisor of the model's block n, Fast-dLLM v2's sub-block decoding; `engine.block_layout`).
  The whole block is computed, as in the reference: its still-masked later sub-blocks are part of it;
* the blocks that finished since its last step (normally the one just completed: its final K/V are
  written then, once) and, at its first step, its prompt;
* for a shifted model (logit_shift 1) the position before, whose hidden state predicts the block's first token.
Queries attend the cached K/V of everything before that span. The logits are those of `none` exactly.

Each forward predicts m = min(n, gen_length) positions per row, [p0, p0 + m) with p0 = the start of the
window's model block clamped into the generated region. A last, short block also predicts the end of the
finished block before it (computed: its queries attend only cached blocks). A first block holding the
prompt's tail (shorter than n) also predicts the start of the next block, which is NOT computed: those
predictions are placeholders (the last computed row's logits) outside the window, which no rule may commit
(candidates are window positions), so the tokens are those of `none`. A row computes n (+ shift) positions
per step, 2n at a block change (moving to the next sub-block of the same block changes nothing).

Host values: the span a row computes next (its `need`) is known on the device after `update` and reaches the
host with the step's one sync. Rows needing more than one block next (a first step: the whole canvas; a
block change or a short block: two blocks) run in a forward of their own, so the others compute one block.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache.base import CACHES, Cache
from unmask.cache.kv_store import KVStore, KVView, attention_mask, block_size
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec


@CACHES.register("block-causal")
class BlockCausalCache(Cache):
    """Cache every finished block's K/V once; compute only the current block (+ blocks just finished)."""

    row_fields = ("store", "cached", "need_rows")
    supports_remask = True   # remask rules reopen only the current block, which is recomputed every step

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.commit == "klass":
            raise ConfigError("cache 'block-causal' predicts only the current block, and commit 'klass' compares "
                              "each position's predictions across steps, including steps before its block opened; "
                              "use cache 'none' with klass")
        if cfg.commit == "learned":
            raise ConfigError("cache 'block-causal' predicts only the current block, and commit 'learned' reads each "
                              "position's prediction of the row's previous forward (its prev_* features), taken "
                              "before its block opened; use cache 'none' with learned")

    @classmethod
    def check_spec(cls, spec: DiffusionSpec) -> None:
        if block_size(spec.attention) is None:
            raise ConfigError("cache 'block-causal' is exact only on block-causal models, and this model attends "
                              "bidirectionally over the whole sequence; use 'prefix', 'dual' or another cache")

    def __init__(self, block_length: int, spec: DiffusionSpec) -> None:
        self.n = block_size(spec.attention)    # the model's block: what each step computes
        self.window = block_length             # the decode block: n or a divisor (engine.block_layout checks it)
        self.attention = spec.attention
        self.model_offset: Tensor | None = None   # (B,) generated index 0 within its model block (set by plan)
        self.store = KVStore()
        self.cached: Tensor | None = None      # (B,) long: canvas [0, cached) holds final K/V per row
        self.need_rows: list[int | None] = []  # host, per row: positions its next forward computes (None: unknown)
        self.dims = (0, 0, 0)                  # host: (prompt length P, canvas length L, logit shift)

    def spans(self, P: int, shift: int, state: DecodeState, window_index: Tensor, cached: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per row (B,) long: (lo, hi) the canvas span to compute, p0 the first predicted generated index, and
        the canvas start of the window's block (everything before it is final once this step has run).
        P: prompt width of the canvas; shift: the model's logit shift; cached (B,): canvas [0, cached) is final."""
        G, n = state.gen_length, self.n
        window_start = window_index * self.window - state.block_offset   # generated index (≤ 0 for the first)
        start = window_start - (self.model_offset + window_start) % n    # its model block's start, generated index
        p0 = start.clamp(0, G - min(n, G))                               # (B,)
        hi = P + (start + n).clamp(max=G)                                # end of the window's block
        lo = (torch.minimum(torch.minimum(cached, P + start), P + p0) - shift).clamp(min=0)
        return lo, hi, p0, P + start

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        P, L, shift = canvas.prompt_length, canvas.key_mask.shape[1], canvas.logit_shift
        self.dims = (P, L, shift)
        self.model_offset = canvas.key_mask[:, :P].sum(-1) % self.n      # (B,) each row's prompt length mod n
        if self.cached is None or self.cached.shape[0] != state.batch:
            self.cached = torch.zeros(state.batch, dtype=torch.long, device=state.tokens.device)
        lo, hi, p0, block_start = self.spans(P, shift, state, state.window_index, self.cached)
        self.next_cached = torch.maximum(self.cached, block_start)       # (B,)
        predicts = p0[:, None] + torch.arange(min(self.n, state.gen_length), device=p0.device)  # (B, m)
        if not self.store or any(need is None for need in self.need_rows) or len(self.need_rows) != state.batch:
            compute, first, Q = None, torch.zeros_like(lo), L            # a row's first step: its whole canvas
            idx = torch.arange(L, device=lo.device)[None, :]
        else:
            Q = min(L, max(self.need_rows))
            first = (hi - Q).clamp(min=0)                                # (B,)
            compute = first[:, None] + torch.arange(Q, device=lo.device)  # (B, Q)
            idx = compute
        write = (idx >= lo[:, None]) & (idx < hi[:, None])               # (B, Q or L)
        logits_at = ((P + predicts - shift) - first[:, None]).clamp(0, Q - 1)   # (B, n) into the computed rows
        mask = attention_mask(canvas.key_mask, compute, self.attention, canvas.positions)
        return Plan(compute=compute, logits_at=logits_at, predicts=predicts,
                    view=KVView(self.store, compute, write, mask))

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        self.cached = self.next_cached

    def host_request(self, state: DecodeState) -> Tensor:
        """(B,) the positions each row computes next step (its next window: the block schedule's rule)."""
        P, L, shift = self.dims
        G, idx = state.gen_length, torch.arange(state.gen_length, device=state.tokens.device)
        first_masked = torch.where(state.is_masked, idx, G).min(-1).values.clamp(max=G - 1)
        window_index = (first_masked + state.block_offset) // self.window
        lo, hi, _, _ = self.spans(P, shift, state, window_index, self.cached)
        # a remask rule may keep a row on its current block: then it needs less than this (never more)
        return (hi - lo).long()

    def heavy_rows(self, state: DecodeState) -> list[bool]:
        """Rows whose next forward is more than one block (a first step: the whole canvas; a block change: the
        finished block too) run in a forward of their own, so the rows inside a block compute just their block."""
        one_block = self.n + self.dims[2]
        return [need is None or need > one_block for need in self.need_rows] if len(self.need_rows) == state.batch \
            else [True] * state.batch

    def host_reply(self, values: list[int]) -> None:
        self.need_rows = list(values)

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None:
            self.store.clear()
            self.cached, self.need_rows = None, []
            return
        if self.cached is not None:
            self.cached = self.cached.index_fill(0, rows.flatten().long(), 0)
        for r in rows.flatten().tolist():
            if r < len(self.need_rows):
                self.need_rows[r] = None

    def nbytes(self) -> int:
        return self.store.nbytes()
