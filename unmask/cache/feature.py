"""dLLM-Cache (arXiv 2506.06295, maomaocun/dLLM-cache): per-layer feature cache with V-verify.

Per layer the cache holds K, V, the attention output (after o_proj) and the FFN output of every canvas row.
A row's prompt part is recomputed every `prompt_interval` steps (Kp), its response (generation region) every
`response_interval` steps (Kr); in between, each layer computes V for all response rows, and recomputes
Q/K, attention and FFN only for the `int(G * rho)` response rows whose fresh V is least cosine-similar to the
cached V (V-verify). All response V are replaced by the fresh ones; every other row adds its cached outputs.

Layer 0: the reference code refreshes both parts of layer 0 on every step (code only, issue #6). We keep it
(`refresh_first_layer=True`, so the presets reproduce the published numbers) but make it a knob.

Batches: each row keeps its own refresh ages. Every row computes the same number S of rows per layer (the
largest any row wants); rows that want fewer compute filler rows whose results are not written or used, so
a row gets the tokens it would get alone.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.cache.base import CACHES, Cache, gather_rows
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.models.cache_view import CacheView, LayerView
from unmask.models.spec import DiffusionSpec


def pack(wanted: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """The `count` row indices per batch row, wanted ones first (ascending), then fillers; and which are wanted.

    wanted: (B, Q) bool. Returns rows (B, count) long sorted ascending, write (B, count) bool.
    """
    order = torch.sort((~wanted).to(torch.int8), dim=1, stable=True).indices[:, :count]  # wanted first
    rows = order.sort(dim=1).values
    return rows, torch.gather(wanted, 1, rows)


def check_full_attention(spec: DiffusionSpec | None, name: str) -> None:
    if spec is not None and spec.attention != "full":
        raise ConfigError(f"cache {name!r} reuses per-layer features under full bidirectional attention; the model's "
                          f"attention is {spec.attention!r} (use cache='prefix' for block-causal models)")


class FeatureLayer(LayerView):
    """The LayerView of one layer in one forward of the feature cache."""

    def __init__(self, cache: "FeatureCache", index: int) -> None:
        self.c, self.i = cache, index
        self.full = cache.full_layers or (index == 0 and cache.refresh_first_layer)
        self.rows: Tensor | None = None    # (B, S) indices into Q
        self.write: Tensor | None = None   # (B, S) bool

    def _store(self, name: str, fresh: Tensor, dim: int, rows_canvas: Tensor, write: Tensor | None) -> None:
        """Write fresh (B, ..., S, ...) rows along `dim` into buffer `name`[i] at canvas rows (B, S)."""
        buf = getattr(self.c, name)
        if self.c.compute is None and write is None and (self.full or self.i not in buf):
            buf[self.i] = fresh
            return
        old = buf[self.i]
        shape = [1] * old.dim()
        shape[0], shape[dim] = rows_canvas.shape
        idx = rows_canvas.view(shape).expand(*[s if d != dim else rows_canvas.shape[1] for d, s in enumerate(old.shape)])
        if write is not None:
            fresh = torch.where(write.view(shape), fresh, old.gather(dim, idx))
        old.scatter_(dim, idx, fresh)

    def select(self, v: Tensor) -> Tensor | None:
        c = self.c
        if self.full:
            self.c.counted = self.c.counted + v.shape[2]
            return None
        B, Q = c.comp.shape
        old_v = c.values[self.i].gather(2, c.comp[:, None, :, None].expand(-1, v.shape[1], -1, v.shape[3]))
        sim = F.cosine_similarity(v.transpose(1, 2).flatten(2).float(), old_v.transpose(1, 2).flatten(2).float(), dim=-1)
        sim = torch.where(c.is_resp[None, :], sim, float("inf"))                      # (B, Q)
        verify = torch.zeros_like(c.is_resp[None, :].expand(B, Q))
        if c.n_rho > 0:
            verify = verify.scatter(1, torch.topk(-sim, c.n_rho, dim=1).indices, True) & c.is_resp[None, :]
        wanted = (c.is_prompt[None, :] & c.prompt_due[:, None]) | (c.is_resp[None, :] & (c.resp_due[:, None] | verify))
        self.rows, self.write = pack(wanted, c.width)
        c.counted = c.counted + wanted.sum(-1)
        v_write = c.is_resp[None, :] | (c.is_prompt[None, :] & c.prompt_due[:, None])  # V-verify: all response V
        self._store("values", v, 2, c.comp, v_write)
        return self.rows

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        if self.rows is None:
            self._store("keys", k, 2, self.c.comp, None)
            self._store("values", v, 2, self.c.comp, None)
            return (k, v, self.c.mask) if self.c.compute is None else (self.c.keys[self.i], self.c.values[self.i], self.c.mask)
        self._store("keys", k, 2, gather_rows(self.c.comp, self.rows), self.write)
        return self.c.keys[self.i], self.c.values[self.i], self.c.mask

    def _out(self, name: str, out: Tensor) -> Tensor:
        c = self.c
        if self.rows is None:
            self._store(name, out, 1, c.comp, None)
            return out if c.compute is None else gather_rows(getattr(c, name)[self.i], c.comp)
        cached = gather_rows(getattr(c, name)[self.i], c.comp)                              # (B, Q, d)
        idx = self.rows[..., None].expand(-1, -1, out.shape[-1])
        out = torch.where(self.write[..., None], out, cached.gather(1, idx))
        self._store(name, out, 1, gather_rows(c.comp, self.rows), None)
        return cached.scatter(1, idx, out)

    def attn_out(self, out: Tensor) -> Tensor:
        return self._out("attn", out)

    def ffn_out(self, out: Tensor) -> Tensor:
        return self._out("ffn", out)


@CACHES.register("feature")
class FeatureCache(Cache, CacheView):
    """dLLM-Cache: prompt every Kp steps, response every Kr steps, V-verified fraction rho in between."""

    row_fields = ("keys", "values", "attn", "ffn", "ages")

    def __init__(self, prompt_interval: int = 50, response_interval: int = 7, rho: float = 0.25,
                 refresh_first_layer: bool = True, spec: DiffusionSpec | None = None) -> None:
        check_full_attention(spec, "feature")
        self.prompt_interval, self.response_interval, self.rho = prompt_interval, response_interval, rho
        self.refresh_first_layer = refresh_first_layer
        self.keys: dict[int, Tensor] = {}
        self.values: dict[int, Tensor] = {}
        self.attn: dict[int, Tensor] = {}
        self.ffn: dict[int, Tensor] = {}
        self.ages: list[list[int]] | None = None   # host, per row: [steps since prompt refresh, since response]
        self.counted: Tensor | int = 0
        self.n_layers = 0

    def heavy_rows(self, state: DecodeState) -> list[bool] | None:
        """Rows due for a prompt or response refresh."""
        if self.ages is None or len(self.ages) != state.batch or None in self.ages:
            return None
        return [a[0] % self.prompt_interval == 0 or a[1] % self.response_interval == 0 for a in self.ages]

    def layer(self, index: int) -> FeatureLayer:
        self.n_layers = max(self.n_layers, index + 1)
        return FeatureLayer(self, index)

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        B, P, G, shift = state.tokens.shape[0], canvas.prompt_length, state.gen_length, canvas.logit_shift
        L, device = P + G, state.tokens.device
        if self.ages is None or not self.keys:
            self.ages = [[0, 0] for _ in range(B)]
        p_due = [a[0] % self.prompt_interval == 0 for a in self.ages]
        r_due = [a[1] % self.response_interval == 0 for a in self.ages]
        self.full_layers = all(p_due) and all(r_due)
        self.compute = None if any(p_due) or self.refresh_first_layer or self.full_layers else \
            torch.arange(P - shift, L, device=device).expand(B, -1)                         # (B, Q)
        self.comp = torch.arange(L, device=device).expand(B, -1) if self.compute is None else self.compute
        self.is_resp = self.comp[0] >= P                                                     # (Q,)
        self.is_prompt = ~self.is_resp
        self.prompt_due = torch.tensor(p_due, device=device)
        self.resp_due = torch.tensor(r_due, device=device)
        self.n_rho = int(G * self.rho)
        n_prompt = shift if self.compute is not None else P   # prompt rows in the forward (host int)
        self.width = max(n_prompt * p + (G if r else self.n_rho) for p, r in zip(p_due, r_due))
        self.width = max(self.width, 1)
        self.mask = canvas.key_mask[:, None, None, :]
        self.counted = torch.zeros(B, dtype=torch.long, device=device)
        predicts = torch.arange(G, device=device).expand(B, G)
        logits_at = predicts + (P - shift) if self.compute is None else predicts
        return Plan(compute=self.compute, logits_at=logits_at, predicts=predicts, view=self)

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        """Account what the forward recomputed (Q/K, attention and FFN rows), then age every row."""
        n = self.n_layers
        plan.row_cost = self.counted if isinstance(self.counted, Tensor) else None
        full = n if self.full_layers else min(int(self.refresh_first_layer), n)
        plan.step_cost = full * self.comp.shape[1] + (n - full) * self.width
        for a in self.ages or []:
            a[0] += 1
            a[1] += 1

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None or self.ages is None:
            for buf in (self.keys, self.values, self.attn, self.ffn):
                buf.clear()
            self.ages = None
            return
        for r in rows.flatten().tolist():   # not a per-step path: rows joined
            self.ages[r] = [0, 0]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for buf in (self.keys, self.values, self.attn, self.ffn)
                   for t in buf.values())
