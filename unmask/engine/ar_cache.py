"""The KV cache of an autoregressive (causal) model: per row, the K/V of the tokens it has read, slot = position.

One tensor holds every layer's keys and values, kv (B, n_layers, 2, H_kv, T + 1, D): slot s of row b holds the
K/V of that row's token at position s (keys rotated at s), and slot T is scratch for padding columns. A row
whose slots [0, fed) are valid reads its next chunk at positions fed, fed + 1, …: the chunk's K/V are written
into their slots and each query at position p attends slots 0..p, i.e. exactly the causal prefix, whatever
stale K/V lie beyond (a rejected draft's slots are simply overwritten when the row reads those positions
again). So the whole state of a row is its slice of `kv` plus the count `fed`, which lets it live in
DecodeState.memory and follow the row through the engine's join / leave / split / merge for free.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.models.cache_view import CacheView, LayerView


def empty_kv(batch: int, n_layers: int, n_kv_heads: int, head_dim: int, length: int, device: torch.device,
             dtype: torch.dtype) -> Tensor:
    """Zeroed slots for `length` positions per row (+ one scratch slot): (B, n_layers, 2, H_kv, length + 1, D)."""
    return torch.zeros(batch, n_layers, 2, n_kv_heads, length + 1, head_dim, device=device, dtype=dtype)


class _Layer(LayerView):
    def __init__(self, view: "SlotKV", index: int) -> None:
        self.view, self.index = view, index

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        view = self.view
        where = view.slots[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])   # (B, H_kv, Q, D)
        keys, values = view.kv[:, self.index, 0], view.kv[:, self.index, 1]          # (B, H_kv, T + 1, D)
        keys.scatter_(2, where, k.to(keys.dtype))
        values.scatter_(2, where, v.to(values.dtype))
        return keys, values, view.mask


class SlotKV(CacheView):
    """One forward of a causal model over a chunk (B, Q) at `positions`, `valid` False on padding columns."""

    def __init__(self, kv: Tensor, positions: Tensor, valid: Tensor) -> None:
        T = kv.shape[4] - 1
        self.kv = kv
        self.slots = torch.where(valid, positions.clamp(max=T - 1), T)                   # (B, Q)
        slot = torch.arange(T + 1, device=kv.device)
        causal = (slot[None, None, :] <= positions[:, :, None]) & (slot < T)             # (B, Q, T + 1)
        scratch = (slot == T).expand_as(causal)
        self.mask = torch.where(valid[:, :, None], causal, scratch)[:, None]             # (B, 1, Q, T + 1)

    def layer(self, index: int) -> LayerView:
        return _Layer(self, index)
