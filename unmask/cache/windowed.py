"""Block-refreshed K/V caches (Fast-dLLM PrefixCache/DualCache, dInfer vicinity): the shared machinery.

Each row refreshes on its own: the step a row opens a new block, its K/V are recomputed for the whole canvas
by a full forward whose logits also decode (no extra NFE). Other steps compute one contiguous span per row
and write that span's fresh K/V into the cache in place; queries attend over the whole cached canvas.

A subclass only says which span a row computes and writes: `span(lo, L) -> (first, hi)` from the first position
the current block needs, lo = P + block_start - logit_shift (Dream's shift: the block's logits come from hidden
states [lo, lo + Bl), so position P + block_start - 1 is computed too).

Batches: rows may be in different blocks. A step is a full forward when any active row refreshes (then the
other rows write only their span, so each row gets the tokens it would get alone); otherwise every row
computes Q = `span_length` positions starting at min(lo_b, L - Q). Whether a row opens a block next step is
known on the device after `update`; it reaches the host with the step's one sync (`host_request`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache.base import CACHES, Cache
from unmask.cache.kv_store import KVStore, KVView, attention_mask
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec


class WindowedKVCache(Cache):
    """Refresh a row at each block start; in between, compute and write only `span(lo)` per row."""

    row_fields = ("store", "row_window", "refresh_next", "span_rows")
    rewritten_on_refresh = ("store",)
    caches_suffix = False   # dual / vicinity also reuse the masked suffix's K/V: they need a second block   # a refresh recomputes the row's whole canvas and writes all its K/V

    supports_remask = True   # every step recomputes the current block; remask rules change only that block

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.schedule not in ("blocks", "full"):
            raise ConfigError(f"cache {cfg.cache!r} refreshes at block starts and needs schedule 'blocks' or 'full', "
                              f"got {cfg.schedule!r}")
        if cls.caches_suffix and cfg.num_windows < 2:
            raise ConfigError(f"cache {cfg.cache!r} caches the masked suffix after the current block, but with one "
                              f"block (block_length {cfg.window_length} = gen_length {cfg.gen_length}) there is no "
                              f"suffix; set block_length < gen_length or use cache='prefix'")

    @classmethod
    def check_spec(cls, spec: DiffusionSpec) -> None:
        if spec.attention != "full":
            name = next(n for n in CACHES.names() if CACHES.get(n) is cls)
            raise ConfigError(f"cache {name!r} refreshes whole-sequence K/V for full-attention models; this model "
                              f"attends {spec.attention!r}: use cache 'block-causal' (exact, computes only the "
                              f"current block)")

    def __init__(self, block_length: int, spec: DiffusionSpec | None = None,
                 cache_update_freq: int | None = None) -> None:
        self.block_length = block_length
        self.attention = spec.attention if spec is not None else "full"
        self.update_freq = cache_update_freq   # also refresh every row every this many steps (dInfer)
        self.store = KVStore()
        self.row_window: Tensor | None = None  # (B,) long: the block each row's cache was refreshed for
        self.refresh_next: list[bool] = []     # host, per row: it opens a new block (refreshes) next step
        self.span_rows: list[int] = []         # host, per row: the span it computes next step
        self.dims = (0, 0, 0)                  # host: (prompt length P, canvas length L, logit shift)

    # ---- subclass hooks ---------------------------------------------------------------------------
    def span(self, lo: Tensor, length: int) -> tuple[Tensor, Tensor]:
        """(B,) first and one-past-last canvas index a row computes and writes in a reuse step."""
        raise NotImplementedError

    def span_length(self, canvas: Canvas) -> int:
        """Q of a reuse step (host int); default: the longest span a row asked for."""
        return max(self.span_rows)

    def forced(self, state: DecodeState) -> list[bool]:
        """Host, per row: whether this step refreshes the row regardless of blocks (its own clock decides)."""
        return [bool(self.update_freq) and step % self.update_freq == 0 for step in state.row_steps]

    def refreshes(self, state: DecodeState) -> list[bool]:
        """Host, per row: whether this step refreshes the row (a new block, its clock, or it is new)."""
        known = self.refresh_next if len(self.refresh_next) == state.batch else [True] * state.batch
        return [bool(r) or f for r, f in zip(known, self.forced(state))]

    def heavy_rows(self, state: DecodeState) -> list[bool]:
        return self.refreshes(state)

    # ---- Cache ------------------------------------------------------------------------------------
    def block_lo(self, canvas: Canvas, window_index: Tensor) -> Tensor:
        return canvas.prompt_length + window_index * self.block_length - canvas.logit_shift

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        L, Bl = canvas.key_mask.shape[1], min(self.block_length, state.gen_length)
        self.dims = (canvas.prompt_length, L, canvas.logit_shift)
        lo = self.block_lo(canvas, state.window_index)                               # (B,)
        first, hi = self.span(lo, L)
        forced, refreshes = self.forced(state), self.refreshes(state)
        if any(refreshes) or not self.store or self.row_window is None:
            if self.row_window is None or not self.store:
                refresh = torch.ones_like(state.finished)                                # (B,) bool
            else:
                refresh = (state.window_index != self.row_window) | torch.tensor(forced, device=lo.device)
            idx = torch.arange(L, device=lo.device)[None, :]
            write = refresh[:, None] | ((idx >= first[:, None]) & (idx < hi[:, None]))   # (B, L)
            if all(refreshes) and len(self.refresh_next) == state.batch:
                write = None   # every row refreshes: the fresh K/V are the cache (no merge with old entries)
            self.row_window = state.window_index if self.row_window is None else \
                torch.where(refresh, state.window_index, self.row_window)
            compute, start, Q = None, torch.zeros_like(lo), L
        else:
            Q = self.span_length(canvas)
            start = first.clamp(max=L - Q)                                               # (B,)
            compute = start[:, None] + torch.arange(Q, device=lo.device)                # (B, Q)
            write = (compute >= first[:, None]) & (compute < hi[:, None])
        logits_at = ((lo - start)[:, None] + torch.arange(Bl, device=lo.device)).clamp(0, Q - 1)  # (B, Bl)
        predicts = (state.window_index * self.block_length)[:, None] + torch.arange(Bl, device=lo.device)
        mask = attention_mask(canvas.key_mask, compute, self.attention, canvas.positions)
        view = KVView(self.store, compute, write, mask)
        return Plan(compute=compute, logits_at=logits_at, predicts=predicts, view=view)

    def next_window(self, state: DecodeState) -> Tensor:
        """(B,) the block each row works on next step (the block schedule's rule: first masked position)."""
        G = state.gen_length
        idx = torch.arange(G, device=state.tokens.device)
        first_masked = torch.where(state.is_masked, idx, G).min(-1).values
        return first_masked.clamp(max=G - 1) // self.block_length

    def host_request(self, state: DecodeState) -> Tensor:
        """Per row: [opens a new block next step (B), the span it needs next step (B)]."""
        nxt = self.next_window(state)
        P, L, shift = self.dims
        first, hi = self.span(P + nxt * self.block_length - shift, L)
        return torch.cat([(nxt != self.row_window).long(), (hi - first).long()])

    def host_reply(self, values: list[int]) -> None:
        B = len(values) // 2
        self.refresh_next, self.span_rows = [bool(v) for v in values[:B]], values[B:]

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None:
            self.store.clear()
            self.row_window, self.refresh_next, self.span_rows = None, [], []
            return
        if self.row_window is not None:
            self.row_window = self.row_window.index_fill(0, rows.flatten().long(), -1)
        for r in rows.flatten().tolist():   # a new row refreshes at its first step
            if r < len(self.refresh_next):
                self.refresh_next[r], self.span_rows[r] = True, 0

    def nbytes(self) -> int:
        return self.store.nbytes()
