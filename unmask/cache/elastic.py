"""Elastic-Cache (arXiv 2510.14973, VILA-Lab/Elastic-Cache): drift decides when, a layer boundary decides where.

Each step computes a query set Q per row: the rows predicting the first `elastic_window` masked positions (a
sliding window; masks beyond it are neither queried nor predicted), the positions decoded at the previous step,
and each layer's tracked tokens (the `track_num` unmasked positions the window's queries attend to most). Layers
below the row's boundary b compute only Q and attend over cached K/V of the other positions; from layer b on
every canvas position is recomputed, non-Q rows starting from their cached layer-b inputs. The first step is full.

Drift test: per layer, each tracked token's attention now (fresh keys) vs with its previous query and the
pre-update keys; if the cosine similarity (heads flattened, min over tracked tokens) is below `gamma` at layer l,
the row's next boundary is l. gamma = 1 refreshes every layer every step (the exact limit).

Deviations from the reference: the boundary found in step t applies from step t+1 (read back with the step's one
host sync, so no per-layer sync) and starts at the drifting layer itself, not l+1 (that layer's non-Q K/V are
still stale next step); EOS truncation of the window is left to the engine's stop-at-EOS rule.

Dream's shift: masked slot g is predicted by canvas row P + g - 1, which is the row queried. Batches: every row
computes S rows (the largest Q, host value) before the forward widens at the smallest boundary of active rows;
a row writes fillers' and (below its own boundary) non-Q rows' results nowhere, so it gets its own tokens.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.cache.base import CACHES, Cache
from unmask.cache.feature import check_full_attention, pack
from unmask.cache.kv_store import KVStore
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.models.cache_view import CacheView, LayerView
from unmask.models.spec import DiffusionSpec


def put(buf: dict[int, Tensor], i: int, fresh: Tensor, dim: int, compute: Tensor | None, write: Tensor | None) -> None:
    """Store fresh rows (B, ..., S, ...) along `dim` into buf[i] at canvas rows `compute` (B, S) where `write`."""
    if compute is None:
        if write is None or i not in buf:
            buf[i] = fresh
            return
        shape = [1] * fresh.dim()
        shape[0], shape[dim] = write.shape
        buf[i] = torch.where(write.view(shape), fresh, buf[i])
        return
    old = buf[i]
    shape = [1] * old.dim()
    shape[0], shape[dim] = compute.shape
    idx = compute.view(shape).expand(*[compute.shape[1] if d == dim else s for d, s in enumerate(old.shape)])
    old.scatter_(dim, idx, torch.where(write.view(shape), fresh, old.gather(dim, idx)))


class ElasticView(CacheView, LayerView):
    """CacheView and LayerView of one forward: narrow (S rows) below `b_min`, the whole canvas from it on."""

    wants_attention = True

    def __init__(self, cache: "ElasticCache", compute: Tensor | None, wanted: Tensor | None, query: Tensor,
                 boundary: Tensor, b_min: int, positions: Tensor) -> None:
        self.c, self.compute, self.wanted, self.query = cache, compute, wanted, query  # (B,S) (B,S) (B,L)
        self.boundary, self.b_min, self.positions = boundary, b_min, positions       # (B,) host int (B,L)
        self.i, self.prev = 0, None

    def layer(self, index: int) -> "ElasticView":
        self.i = index
        self.c.n_layers = max(self.c.n_layers, index + 1)
        return self

    @property
    def wide(self) -> bool:
        return self.compute is None or self.i >= self.b_min

    def write_mask(self, buf: dict) -> Tensor | None:
        """Which computed rows enter the caches: (B, S) narrow, (B, L) wide (None: all, first forward)."""
        if not self.wide:
            return self.wanted
        return None if self.i not in buf else self.query | (self.i >= self.boundary)[:, None]

    def enter(self, h: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        i, inputs = self.i, self.c.inputs
        if not self.wide:
            if i > 0:
                put(inputs, i, h, 1, self.compute, self.wanted)
            return h, positions
        if self.compute is not None and i == self.b_min:                 # widen from cached layer inputs
            idx = self.compute[..., None].expand(-1, -1, h.shape[-1])      # (B, S, d)
            fresh = torch.where(self.wanted[..., None], h, inputs[i].gather(1, idx))
            h, positions = inputs[i].scatter(1, idx, fresh), self.positions  # (B, L, d)
        elif i > 0 and i in inputs:                                        # rows not refreshed yet: cached
            stale = ~self.query & (self.boundary >= i)[:, None]            # (B, L)
            h = torch.where(stale[..., None], inputs[i], h)
        if i > 0:
            inputs[i] = h
        return h, positions

    def leave(self, h: Tensor) -> Tensor:
        if self.compute is None or self.b_min >= self.c.n_layers:
            return h
        return h.gather(1, self.compute[..., None].expand(-1, -1, h.shape[-1]))  # (B, S, d)

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self.c
        self.prev = c.previous_attention(self.i)                           # (B, H, T, L) before the write
        compute = None if self.wide else self.compute
        keys, values = c.store.write(self.i, k, v, compute, self.write_mask(c.store.keys))
        return keys, values, c.key_mask[:, None, None, :]

    def observe_attention(self, q: Tensor, probs: Tensor) -> None:
        """q (B, H, S|L, D) rotated; probs (B, H, S|L, L) float32."""
        c, i = self.c, self.i
        put(c.qs, i, q, 2, None if self.wide else self.compute, self.write_mask(c.qs))
        if self.prev is not None:
            t = c.track[i]                                                 # (B, T) canvas rows
            at = t if self.wide else torch.searchsorted(self.compute, t).clamp(max=self.compute.shape[1] - 1)
            B, H, _, L = probs.shape
            now = probs.gather(2, at[:, None, :, None].expand(B, H, -1, L))  # (B, H, T, L)
            sim = F.cosine_similarity(now.transpose(1, 2).flatten(2), self.prev.transpose(1, 2).flatten(2), dim=-1)
            c.sims[i] = sim.min(-1).values                                 # (B,)
        win = c.win_rows if self.wide else c.win_rows.gather(1, self.compute) & self.wanted   # (B, S|L)
        received = torch.einsum("bs,bsl->bl", win.float(), probs.mean(1))            # (B, L)
        received = torch.where(c.allowed, received, float("-inf"))
        c.new_track[i] = received.topk(min(c.track_num, received.shape[1]), dim=-1).indices


@CACHES.register("elastic")
class ElasticCache(Cache):
    """Elastic-Cache: sliding-window queries, drift-gated deep-layer refresh from cached layer inputs."""

    row_fields = ("store", "qs", "inputs", "track", "boundary", "width_rows", "bound_rows")
    pooled_kv = False   # it reads its K/V beside per-row queries and layer inputs of the same size (qs, inputs),
                        # which are its own tensors anyway: the pool would save none of the copies

    def __init__(self, elastic_window: int = 16, gamma: float = 0.9, track_num: int = 1,
                 spec: DiffusionSpec | None = None) -> None:
        check_full_attention(spec, "elastic")   # remask rules are refused by Cache.check_config
        self.window, self.gamma, self.track_num = elastic_window, gamma, track_num
        self.store = KVStore()
        self.qs: dict[int, Tensor] = {}          # per layer (B, H, L, D) rotated queries at last computation
        self.inputs: dict[int, Tensor] = {}      # per layer ≥ 1 (B, L, d) layer inputs at last computation
        self.track: dict[int, Tensor] = {}       # per layer (B, T) canvas rows tracked for the drift test
        self.new_track: dict[int, Tensor] = {}
        self.sims: dict[int, Tensor] = {}        # per layer (B,) cosine similarity of this step
        self.boundary: Tensor | None = None      # (B,) long: first layer recomputed in full next step
        self.n_layers, self.b_min = 0, 0              # host values
        self.width_rows: list[int] = []               # host, per row: its next query-set size
        self.bound_rows: list[int] = []               # host, per row: its next boundary layer
        self.view: ElasticView | None = None

    def window_slots(self, state: DecodeState) -> Tensor:
        """(B, G) bool: the first `elastic_window` masked positions of each row."""
        return state.is_masked & (state.is_masked.long().cumsum(-1) <= self.window)

    def query_mask(self, state: DecodeState) -> Tensor:
        """(B, L) bool: Q = window rows ∪ positions decoded last step ∪ tracked tokens (real positions only)."""
        P, shift, G = self.dims
        win = self.window_slots(state)
        query = torch.zeros_like(self.key_mask)
        query[:, P - shift:P - shift + G] = win
        self.win_rows = query.clone()
        query[:, P:] |= state.committed_at == state.row_step[:, None] - 1
        if self.track:
            query.scatter_(1, torch.cat(list(self.track.values()), 1), True)
        return query & self.key_mask

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        B, G, P = state.tokens.shape[0], state.gen_length, canvas.prompt_length
        self.dims, self.key_mask = (P, canvas.logit_shift, G), canvas.key_mask
        self.allowed = canvas.key_mask & torch.cat([torch.ones_like(canvas.prompt, dtype=torch.bool),
                                                    ~state.is_masked], 1)                  # (B, L) unmasked
        query = self.query_mask(state)
        known = len(self.bound_rows) == B and None not in self.bound_rows
        self.b_min = min(self.bound_rows) if known else 0
        if self.boundary is None or not self.store:
            self.boundary, self.b_min = torch.zeros(B, dtype=torch.long, device=query.device), 0
        compute = wanted = None
        if self.b_min > 0:
            compute, wanted = pack(query, max(1, max(self.width_rows)))               # (B, S)
        W = min(self.window, G)
        slots, valid = pack(self.window_slots(state), W)                              # (B, W)
        rows = P - canvas.logit_shift + slots
        logits_at = rows if compute is None else \
            torch.searchsorted(compute, rows).clamp(max=compute.shape[1] - 1)
        unmasked = ~state.is_masked
        fallback = unmasked.int().argmax(-1, keepdim=True).expand_as(slots)            # never a candidate
        predicts = torch.where(valid | ~unmasked.any(-1, keepdim=True), slots, fallback)
        self.sims, self.new_track = {}, {}
        self.view = ElasticView(self, compute, wanted, query, self.boundary, self.b_min, canvas.positions)
        return Plan(compute=compute, logits_at=logits_at, predicts=predicts, view=self.view)

    def previous_attention(self, i: int) -> Tensor | None:
        """(B, H, T, L) attention of layer i's tracked tokens with their previous queries and the cached keys."""
        if i not in self.track or i not in self.qs or i not in self.store.keys:
            return None
        t, q, k = self.track[i], self.qs[i], self.store.keys[i]
        q = q.gather(2, t[:, None, :, None].expand(-1, q.shape[1], -1, q.shape[3]))   # (B, H, T, D)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)                     # (B, H, L, D)
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        return scores.masked_fill(~self.key_mask[:, None, None, :], float("-inf")).softmax(-1)

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        self.account(plan)
        n, B = self.n_layers, state.tokens.shape[0]
        ones = torch.ones(B, device=state.tokens.device)
        sims = torch.stack([self.sims.get(i, ones) for i in range(n)])                 # (n, B)
        sims = torch.where((state.row_step == 1)[None, :], 1.0, sims)   # a row's first step has no drift to test
        below = (sims < self.gamma) | (self.gamma >= 1)
        self.boundary = torch.where(below.any(0), below.int().argmax(0), n).long()
        self.track, self.new_track = self.new_track, {}

    def account(self, plan: Plan) -> None:
        """Positions x layers each row needs: |Q| below its boundary, the whole canvas from it on."""
        v, n, L = self.view, self.n_layers, self.key_mask.shape[1]
        narrow = v.boundary.clamp(max=n)                                               # (B,)
        plan.row_cost = narrow * v.query.sum(-1) + (n - narrow) * L
        b = min(v.b_min, n) if v.compute is not None else 0
        plan.step_cost = b * (0 if v.compute is None else v.compute.shape[1]) + (n - b) * L

    def host_request(self, state: DecodeState) -> Tensor:
        """Per row: [its next query-set size (B), its next boundary (B)]."""
        return torch.cat([self.query_mask(state).sum(-1), self.boundary]).long()

    def host_reply(self, values: list[int]) -> None:
        B = len(values) // 2
        self.width_rows, self.bound_rows = values[:B], values[B:]

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None:
            for buf in (self.qs, self.inputs, self.track, self.new_track):
                buf.clear()
            self.store.clear()
            self.boundary, self.width_rows, self.bound_rows = None, [], []
        elif self.boundary is not None:
            self.boundary = self.boundary.index_fill(0, rows.flatten().long(), 0)
            for r in rows.flatten().tolist():
                if r < len(self.bound_rows):
                    self.bound_rows[r] = 0
        self.b_min = 0

    def nbytes(self) -> int:
        tensors = [*self.qs.values(), *self.inputs.values(), *self.track.values()]
        tensors += [self.boundary] if self.boundary is not None else []
        return self.store.nbytes() + sum(t.numel() * t.element_size() for t in tensors)
