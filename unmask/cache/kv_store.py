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

from unmask.cache.kv_pool import KVPool, Slots
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
    """One K and one V buffer per layer, (B, H_kv, L, D): its own tensors (allocated on the first full forward),
    or, once `bind` gives it a KVPool and its rows' slots, the pool's rows (a join, leave, split or merge then
    moves slot numbers, not K/V)."""

    def __init__(self) -> None:
        self.keys: dict[int, Tensor] = {}
        self.values: dict[int, Tensor] = {}
        self.pool: KVPool | None = None
        self.slots: list[int] = []           # pooled: the pool row of each row, in row order
        self.layers: set[int] = set()        # pooled: layers written since the last full forward / clear
        self.length = 0                      # pooled: canvas length L of the rows
        self._slots: Slots | None = None

    def bind(self, pool: KVPool, slots: list[int]) -> None:
        """Keep K/V in `pool`, rows `slots` (one per row, in row order), from now on."""
        if self.keys:
            raise RuntimeError("a KVStore holding its own K/V cannot move into a pool")
        if self.pool is not None and self.pool is not pool:
            raise RuntimeError("a KVStore cannot move between pools")
        if self.layers and len(slots) != len(self.slots):
            raise RuntimeError(f"{len(slots)} slots bound to a store of {len(self.slots)} rows")
        self.pool = pool
        for mine, slot in zip(self.slots, slots):
            if mine < 0 and self.layers:   # a row that joined a store holding K/V: zeros until it writes them
                pool.zero(slot, self.length)
        if slots != self.slots or self._slots is None:
            self.slots, self._slots = list(slots), None

    def slot_index(self) -> Slots:
        if self._slots is None:
            self._slots = Slots(self.slots, self.pool.device)
        return self._slots

    def __bool__(self) -> bool:
        return bool(self.layers) if self.pool is not None else bool(self.keys)

    def rows(self) -> int | None:
        """Rows held (None when nothing is)."""
        if self.pool is not None:
            return len(self.slots) if self.layers else None
        return next((t.shape[0] for t in self.keys.values()), None)

    def clear(self) -> None:
        self.keys.clear()
        self.values.clear()
        self.layers.clear()

    def nbytes(self) -> int:
        if self.pool is not None:
            _, H, _, D = self.pool.shape
            size = torch.empty((), dtype=self.pool.dtype).element_size()
            return 2 * len(self.layers) * len(self.slots) * H * self.length * D * size
        return sum(t.numel() * t.element_size() for d in (self.keys, self.values) for t in d.values())

    def write(self, layer: int, k: Tensor, v: Tensor, compute: Tensor | None, write: Tensor | None
              ) -> tuple[Tensor, Tensor]:
        """Store fresh k, v (B, H_kv, Q, D) of the computed positions; return the whole buffers (B, H_kv, L, D).

        compute: (B, Q) canvas indices, None = the whole canvas in order. write: (B, Q) bool, which fresh
        entries enter the cache (the rest were computed but their cached K/V are kept); None = all.
        """
        if self.pool is not None:
            return self.write_pooled(layer, k, v, compute, write)
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
        return scatter_fresh(K, V, k, v, compute, write)[:2]

    def write_pooled(self, layer: int, k: Tensor, v: Tensor, compute: Tensor | None, write: Tensor | None
                     ) -> tuple[Tensor, Tensor]:
        """`write` with the K/V in the pool's rows of this store's slots (same values as its own tensors)."""
        slots = self.slot_index()
        if compute is None and (write is None or layer not in self.layers):
            self.pool.put_rows(layer, slots, k, v)
            self.layers.add(layer)
            self.length = k.shape[2]
            return k, v
        if layer not in self.layers:
            raise RuntimeError("partial forward before any full forward: the cache holds no K/V yet")
        K, V = self.pool.rows(layer, slots, self.length, k.dtype)
        if compute is None:
            w = write[:, None, :, None]
            K, V = torch.where(w, k, K), torch.where(w, v, V)
            self.pool.put_rows(layer, slots, K, V)
            return K, V
        K, V, k, v = scatter_fresh(K, V, k, v, compute, write)
        if slots.start is None:   # K, V are gathered copies: the entries written go back to the pool too
            self.pool.put_positions(layer, slots, compute, k, v)
        return K, V


def scatter_fresh(K: Tensor, V: Tensor, k: Tensor, v: Tensor, compute: Tensor, write: Tensor | None
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """K, V (B, H_kv, L, D) with k, v (B, H_kv, Q, D) written in place at canvas indices `compute` (B, Q) where
    `write` (B, Q) (None: everywhere); also the (B, H_kv, Q, D) entries now at `compute`."""
    idx = compute[:, None, :, None].expand(-1, K.shape[1], -1, K.shape[3])  # (B, H_kv, Q, D)
    if write is not None:
        w = write[:, None, :, None]
        k, v = torch.where(w, k, K.gather(2, idx)), torch.where(w, v, V.gather(2, idx))
    K.scatter_(2, idx, k)   # compute indices are distinct per row, so the scatter is deterministic
    V.scatter_(2, idx, v)
    return K, V, k, v


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
