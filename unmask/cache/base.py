"""Cache ABC: a cache plans each forward (what to compute, what to reuse) and updates itself after it."""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.cache.kv_pool import KVPool
from unmask.cache.kv_store import KVStore
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.registry import Registry


class Cache(ABC):
    """One cache instance serves the rows of one group; rows join and leave between steps.

    Row storage: every per-row attribute is named in `row_fields` (a tensor whose dim 0 is the row, a dict of
    such tensors, a KVStore, or a host list). `take_rows(index)` keeps the rows `index` and appends new rows
    (index -1), which `reset(new_rows)` then marks to start fresh: a new row's first step computes all of its
    canvas, exactly as it would alone. Decisions that depend on a row's age use its own clock
    (`state.row_step` on the device, `state.row_steps` on the host), never a group-wide counter.

    Cost accounting is the engine's: a plan may carry `row_cost` / `step_cost` when the plain Q x layers is
    not what was computed.

    Host values: a cache whose next plan depends on data (which rows open a new block, how many positions
    still need computing) returns them from `host_request` as a small long tensor; the engine fetches them
    in the same transfer as the finished flags (the one host sync per step) and hands them to `host_reply`.
    """

    row_fields: tuple[str, ...] = ()
    pooled_kv: bool = True   # its KVStores may keep their K/V in the engine's pool (use_pool)
    uniform_cost: bool = False   # True: every row's forward computes the same positions (new rows just join)
    rewritten_on_refresh: tuple[str, ...] = ()   # row fields a refresh (a heavy step) rewrites whole
    supports_remask: bool = False   # True: exact with remask rules that change only the current window's tokens

    @classmethod
    def check_config(cls, cfg) -> None:
        """Raise ConfigError when `cfg` (a DecodeConfig) asks for something this cache cannot do, naming why.
        Called by DecodeConfig's validation, before anything is built."""
        if cfg.remask != "none" and not cls.supports_remask:
            raise ConfigError(f"cache {cfg.cache!r} reuses K/V or features computed from committed tokens, which "
                              f"remask {cfg.remask!r} may reopen or edit; use cache 'none', 'prefix', 'dual' or "
                              f"'vicinity' with a remask rule")

    @classmethod
    def check_spec(cls, spec) -> None:
        """Raise ConfigError when this cache cannot serve a model with `spec` (a DiffusionSpec), naming why.
        Called when a request meets the model, before anything is built."""

    @abstractmethod
    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        """Plan the next forward. window: (B, G) bool, the positions that may be committed this step."""

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        """Called after the step's commits were applied to `state`. scores: this step's (B, G) scores,
        -inf where the forward gave no logits (d2Cache ranks masked positions by them)."""

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget everything (rows=None), or make the given rows start fresh at their next step."""

    def nbytes(self) -> int:
        """Bytes of tensors this cache holds."""
        return 0

    def host_request(self, state: DecodeState) -> Tensor | None:
        """(k,) long device values the next `plan` needs on the host, or None. Called after `update`."""
        return None

    def host_reply(self, values: list[int]) -> None:
        """The values of `host_request`, read back with the step's one host sync."""

    def heavy_rows(self, state: DecodeState) -> list[bool] | None:
        """Host, per row: whether its next forward is much larger than the others' (a refresh). The engine runs
        such rows in a forward of their own, so one row opening a block never makes the others recompute."""
        return None

    def split(self, rows: list[int], refreshing: bool = False) -> "Cache":
        """Move `rows` into a new cache of the same kind (returned); this one keeps the others, in order.

        refreshing: every moved row refreshes at its next step, so the fields in `rewritten_on_refresh` are not
        copied for them (the refresh rewrites them whole)."""
        other = copy.copy(self)
        rest = [r for r in range(self.batch_rows()) if r not in set(rows)]
        for name in self.row_fields:
            value = getattr(self, name)
            skip = refreshing and name in self.rewritten_on_refresh
            setattr(other, name, type(value)() if skip else take(value, rows))
            setattr(self, name, take(value, rest))
        return other

    def drop_rewritten(self) -> None:
        """Forget the fields a refresh rewrites whole (every row refreshes at the next step): joining rows then
        copies nothing of them."""
        for name in self.rewritten_on_refresh:
            setattr(self, name, type(getattr(self, name))())

    def merge(self, other: "Cache") -> None:
        """Append `other`'s rows (a cache split from this one) after this one's."""
        for name in self.row_fields:
            setattr(self, name, concat(getattr(self, name), getattr(other, name)))

    def batch_rows(self) -> int:
        """Rows held now (from the first row field that holds any)."""
        for name in self.row_fields:
            n = rows_of(getattr(self, name))
            if n is not None:
                return n
        return 0

    def use_pool(self, pool: KVPool, slots: list[int]) -> None:
        """Keep the K/V of this cache's KVStores in `pool`, rows `slots` (one per row, in row order); called before
        each step by whoever owns the pool. A cache with `pooled_kv` False keeps its own tensors."""
        if not self.pooled_kv:
            return
        for name in self.row_fields:
            value = getattr(self, name)
            if isinstance(value, KVStore):
                value.bind(pool, slots)

    def take_rows(self, index: list[int]) -> None:
        """Keep rows `index` in that order; -1 entries are new rows (their storage is zero until refreshed)."""
        for name in self.row_fields:
            setattr(self, name, take(getattr(self, name), index))
        new = [i for i, r in enumerate(index) if r < 0]
        if new:
            self.reset(torch.tensor(new, dtype=torch.long))


def rows_of(value) -> int | None:
    if isinstance(value, KVStore):
        return value.rows()
    if isinstance(value, dict):
        return next((rows_of(v) for v in value.values()), None)
    if isinstance(value, list):
        return len(value) if value else None
    return None if value is None else value.shape[0]


def concat(a, b):
    """Rows of a then rows of b, for any per-row value; an empty or unset side gives the other."""
    if rows_of(a) is None:
        return b
    if rows_of(b) is None:
        return a
    if isinstance(a, KVStore):
        return concat_stores(a, b)
    if isinstance(a, dict):
        if set(a) != set(b):
            raise RuntimeError(f"cannot merge caches holding different layers: {sorted(a)} vs {sorted(b)}")
        return {k: concat(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return a + b
    return torch.cat([a, b])


def concat_stores(a: KVStore, b: KVStore) -> KVStore:
    """a's rows then b's: own tensors are concatenated; pooled stores join their slot lists (no K/V moves)."""
    out = KVStore()
    if a.pool is None and b.pool is None:
        out.keys, out.values = concat(a.keys, b.keys), concat(a.values, b.values)
        return out
    if a.pool is not b.pool or a.layers != b.layers or a.length != b.length:
        raise RuntimeError("cannot merge K/V stores of different pools, layers or canvas lengths")
    out.pool, out.slots, out.layers, out.length = a.pool, a.slots + b.slots, set(a.layers), a.length
    return out


def take_store(store: KVStore, index: list[int]) -> KVStore:
    """Rows `index` of a store (-1: a new row, zero in its own tensors; in a pool, the slot bound at its step)."""
    out = KVStore()
    if store.pool is None:
        out.keys, out.values = take(store.keys, index), take(store.values, index)
        return out
    out.pool, out.layers, out.length = store.pool, set(store.layers), store.length
    out.slots = [store.slots[r] if r >= 0 else -1 for r in index]
    return out


def take(value, index: list[int]):
    """Rows `index` of a per-row value (-1: a new zero / None row), in new containers."""
    if value is None:
        return None
    if isinstance(value, KVStore):
        return take_store(value, index)
    if isinstance(value, dict):
        return {k: take(v, index) for k, v in value.items()}
    if isinstance(value, list):
        return [value[r] if 0 <= r < len(value) else None for r in index]
    rows = torch.tensor([max(r, 0) for r in index], dtype=torch.long, device=value.device)
    out = value.index_select(0, rows)
    if any(r < 0 for r in index):
        fresh = torch.tensor([r < 0 for r in index], device=value.device)
        out[fresh] = 0
    return out


CACHES: Registry[type[Cache]] = Registry("cache")


def full_plan(canvas: Canvas, state: DecodeState, view) -> Plan:
    """Compute every canvas position; logits for the whole generation region (shift applied)."""
    B, P, G = state.tokens.shape[0], canvas.prompt_length, state.gen_length
    predicts = torch.arange(G, device=state.tokens.device).expand(B, G)
    return Plan(compute=None, logits_at=predicts + (P - canvas.logit_shift), predicts=predicts, view=view)


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """x: (B, L, ...) gathered at index (B, Q) along dim 1."""
    return torch.gather(x, 1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


__all__ = ["CACHES", "Cache", "Canvas", "Plan", "full_plan", "gather_rows", "take", "Tensor"]
