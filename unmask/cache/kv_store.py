"""Per-layer K/V buffers over the canvas, written per row, and the attention masks of a partial forward.

Keys are stored ROTATED: the model rotates each key at its own absolute position before `attend_kv`, and a
canvas slot's position never changes during a decode, so a cached rotated key stays valid for that slot
(Fast-dLLM stores pre-RoPE keys instead, METHODS.md §19 rule 4; both re-rotate correctly).

Attention patterns (`DiffusionSpec.attention`) are built by `models.block_mask` from each row's positions:
"full", or "block_causal:<n>" with blocks counted from each row's own position 0 (not from the canvas column).
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.errors import ConfigError
from unmask.models.block_mask import pattern_mask
from unmask.models.block_mask import block_size as _block_size
from unmask.models.cache_view import CacheView, LayerView, MaskView


def block_size(attention: str) -> int | None:
    """None for full attention, n for "block_causal:<n>"; ConfigError for anything else."""
    try:
        return _block_size(attention)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def attention_mask(key_mask: Tensor, queries: Tensor | None, attention: str, positions: Tensor) -> Tensor:
    """Mask (B, 1, Q or 1, L) bool, True = attend, for queries at canvas indices `queries` (B, Q) (None = all L).

    key_mask: (B, L) bool, False on left padding; positions: (B, L) long, the canvas positions.
    """
    block_size(attention)
    return pattern_mask(key_mask, positions, attention, queries)


class KVStore:
    """One K and one V buffer per layer, (B, H_kv, L, D), allocated on the first full forward."""

    def __init__(self) -> None:
        self.keys: dict[int, Tensor] = {}
        self.values: dict[int, Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def clear(self) -> None:
        self.keys.clear()
        self.values.clear()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for d in (self.keys, self.values) for t in d.values())

    def write(self, layer: int, k: Tensor, v: Tensor, compute: Tensor | None, write: Tensor | None
              ) -> tuple[Tensor, Tensor]:
        """Store fresh k, v (B, H_kv, Q, D) of the computed positions; return the whole buffers (B, H_kv, L, D).

        compute: (B, Q) canvas indices, None = the whole canvas in order. write: (B, Q) bool, which fresh
        entries enter the cache (the rest were computed but their cached K/V are kept); None = all.
        """
        if compute is None and (write is None or layer not in self.keys):
            self.keys[layer], self.values[layer] = k, v   # a full forward: the fresh tensors are the cache
            return k, v
        if layer not in self.keys:
            raise RuntimeError("partial forward before any full forward: the cache holds no K/V yet")
        K, V = self.keys[layer], self.values[layer]
        if compute is None:                                # full forward, some rows keep cached entries
            w = write[:, None, :, None]
            self.keys[layer], self.values[layer] = torch.where(w, k, K), torch.where(w, v, V)
            return self.keys[layer], self.values[layer]
        idx = compute[:, None, :, None].expand(-1, K.shape[1], -1, K.shape[3])  # (B, H_kv, Q, D)
        if write is not None:
            w = write[:, None, :, None]
            k, v = torch.where(w, k, K.gather(2, idx)), torch.where(w, v, V.gather(2, idx))
        K.scatter_(2, idx, k)   # compute indices are distinct per row, so the scatter is deterministic
        V.scatter_(2, idx, v)
        return K, V


class KVView(CacheView, LayerView):
    """The CacheView of one forward through a KVStore: write the computed K/V, attend over the whole canvas."""

    def __init__(self, store: KVStore, compute: Tensor | None, write: Tensor | None, mask: Tensor) -> None:
        self.store, self.compute, self.write, self.mask = store, compute, write, mask
        self.index = 0

    def layer(self, index: int) -> "KVView":
        self.index = index
        return self

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        keys, values = self.store.write(self.index, k, v, self.compute, self.write)
        return keys, values, self.mask
