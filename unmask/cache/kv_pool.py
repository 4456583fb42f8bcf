"""The K/V slot pool: per layer one K and one V tensor of (slots, H_kv, context, D), shared by every group.

    pool = KVPool(n_layers=6, slots=16, n_kv_heads=4, context=256, head_dim=32)   # sized, nothing allocated
    slot = pool.acquire()            # a request's row of the pool, until pool.release(slot)
    K, V = pool.rows(layer, slots, L)          # (B, H_kv, L, D): a view of the pool when the slots are a run
    pool.put_rows(layer, slots, k, v)          # whole rows [0, L)
    pool.put_positions(layer, slots, compute, k, v)   # k, v (B, H_kv, Q, D) at canvas indices compute (B, Q)

The size is fixed when the pool is made; the tensors are allocated (uninitialised) on the first write. Nothing
is zeroed up front: a row's first forward writes all of its canvas [0, L), except a row joining a store that
already holds K/V, whose [0, L) its store zeroes when it binds the slot (`zero`), so it reads what a cache's own
tensors give a new row. Rows of a group are named by their slots: a group that gains, loses,
splits off or takes back rows changes its list of slots, and no K/V moves. The pool knows nothing of requests
or groups: the engine's runner acquires and releases slots, and a cache's KVStore reads and writes through them.
"""
from __future__ import annotations

import torch
from torch import Tensor


class KVPool:
    """Fixed-size K/V rows ("slots") for every layer; see the module docstring."""

    def __init__(self, n_layers: int, slots: int, n_kv_heads: int, context: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        self.shape = (slots, n_kv_heads, context, head_dim)
        self.n_layers, self.dtype, self.device = n_layers, dtype, torch.device(device)
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        self.free: list[int] = list(range(slots))   # ascending: acquire takes the lowest, so runs stay together
        self.held: set[int] = set()

    @property
    def slots(self) -> int:
        return self.shape[0]

    @property
    def context(self) -> int:
        return self.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole pool (K and V of every layer), allocated or not."""
        n = 1
        for s in self.shape:
            n *= s
        return 2 * self.n_layers * n * torch.empty((), dtype=self.dtype).element_size()

    @property
    def allocated(self) -> bool:
        return bool(self.keys)

    # ---- slots ------------------------------------------------------------------------------------
    def acquire(self) -> int | None:
        """The lowest free slot, or None when every slot is held."""
        if not self.free:
            return None
        slot = self.free.pop(0)
        self.held.add(slot)
        return slot

    def zero(self, slot: int, length: int) -> None:
        """Zero positions [0, length) of `slot` in every layer."""
        for K, V in zip(self.keys, self.values):
            K[slot, :, :length].zero_()
            V[slot, :, :length].zero_()

    def release(self, slot: int) -> None:
        if slot not in self.held:
            raise RuntimeError(f"slot {slot} is not held")
        self.held.discard(slot)
        self.free.append(slot)
        self.free.sort()

    # ---- storage ----------------------------------------------------------------------------------
    def allocate(self, dtype: torch.dtype) -> None:
        """Allocate every layer, uninitialised, in the dtype of the first K/V written."""
        self.dtype = dtype
        self.keys = [torch.empty(self.shape, dtype=dtype, device=self.device) for _ in range(self.n_layers)]
        self.values = [torch.empty(self.shape, dtype=dtype, device=self.device) for _ in range(self.n_layers)]

    def layer(self, index: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if not self.keys:
            self.allocate(dtype)
        if dtype != self.dtype:
            raise RuntimeError(f"the K/V pool holds {self.dtype}; a layer wrote {dtype}")
        return self.keys[index], self.values[index]

    def rows(self, index: int, slots: "Slots", length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """K, V (B, H_kv, length, D) of `slots`: views of the pool when the slots are a run, else gathered copies."""
        K, V = self.layer(index, dtype)
        if slots.start is not None:
            run = slice(slots.start, slots.start + slots.count)
            return K[run, :, :length], V[run, :, :length]
        return K[slots.index, :, :length], V[slots.index, :, :length]

    def put_rows(self, index: int, slots: "Slots", k: Tensor, v: Tensor) -> None:
        """Write k, v (B, H_kv, L, D) into positions [0, L) of `slots`."""
        K, V = self.layer(index, k.dtype)
        L = k.shape[2]
        if slots.start is not None:
            K[slots.start:slots.start + slots.count, :, :L].copy_(k)
            V[slots.start:slots.start + slots.count, :, :L].copy_(v)
            return
        K[slots.index, :, :L] = k
        V[slots.index, :, :L] = v

    def put_positions(self, index: int, slots: "Slots", compute: Tensor, k: Tensor, v: Tensor) -> None:
        """Write k, v (B, H_kv, Q, D) at canvas indices compute (B, Q) (distinct per row) of `slots`."""
        K, V = self.layer(index, k.dtype)
        rows = slots.index[:, None]                                        # (B, 1) with compute (B, Q)
        K[rows, :, compute] = k.transpose(1, 2)                            # indexed as (B, Q, H_kv, D)
        V[rows, :, compute] = v.transpose(1, 2)


class Slots:
    """The pool rows of a group's rows, in row order: a device index, and the first slot when they are a run."""

    def __init__(self, slots: list[int], device: torch.device) -> None:
        self.list = list(slots)
        self.count = len(slots)
        run = bool(slots) and slots == list(range(slots[0], slots[0] + len(slots)))
        self.start = slots[0] if run else None
        self.index = torch.tensor(slots, dtype=torch.long, device=device)
