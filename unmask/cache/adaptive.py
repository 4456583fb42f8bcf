"""d2Cache (arXiv 2509.23094, Kamichanw/d2Cache): per step, recompute a small set of positions in every layer.

Masked positions are chosen by last known confidence x certainty density (Gaussian-weighted fraction of
decoded neighbours) inside a search window from the current block; positions decoded this step are always
recomputed next step; prompt/decoded positions are added by a top-p nucleus of attention-rollout importance.
Every other position keeps its cached per-layer K/V and gives no logits. The first forward is full.

Dream's shift: a selected masked position i is predicted by canvas row P + i - 1, which is the row recomputed
(the reference's "retain the token before each selected mask"); a decoded position recomputes its own row.

Batches: every row computes S rows (the largest selection of any active row, read back with the step's one host
sync); a row with fewer selected computes fillers that write nothing and predict nothing (the reference writes
its top-ups instead), so a row gets the tokens it would get alone.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache.base import CACHES, Cache
from unmask.cache.feature import check_full_attention, pack
from unmask.cache.kv_store import KVStore, KVView
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.models.spec import DiffusionSpec


def predictions(compute: Tensor | None, write: Tensor | None, canvas: Canvas, state: DecodeState
                ) -> tuple[Tensor, Tensor]:
    """(logits_at, predicts), each (B, S): the computed rows that predict a generated position.

    Rows that predict nothing (prompt rows, fillers) are pointed at the row's first unmasked position, which no
    commit can touch, or (when all are masked) duplicate the first valid row.
    """
    B, P, G, shift = state.tokens.shape[0], canvas.prompt_length, state.gen_length, canvas.logit_shift
    if compute is None:
        predicts = torch.arange(G, device=state.tokens.device).expand(B, G)
        return predicts + (P - shift), predicts
    S = compute.shape[1]
    gen = compute - P + shift                                                      # (B, S)
    valid = (gen >= 0) & (gen < G) & (write if write is not None else True)
    arange = torch.arange(S, device=compute.device).expand(B, S)
    unmasked = ~state.is_masked
    has_free = unmasked.any(-1, keepdim=True)                                       # (B, 1)
    first_free = unmasked.int().argmax(-1, keepdim=True)                           # (B, 1)
    first_valid = valid.int().argmax(-1, keepdim=True)                             # (B, 1)
    dup_pos = torch.where(has_free, first_free, gen.gather(1, first_valid).clamp(0, G - 1))
    logits_at = torch.where(valid | has_free, arange, first_valid.expand(B, S))
    return logits_at, torch.where(valid, gen, dup_pos.expand(B, S))


def certainty_density(decoded: Tensor, sigma: float) -> Tensor:
    """Gaussian-weighted fraction of decoded positions around each position, (B, G) float.

    The signal left of the region counts as decoded; right of it as decoded iff the last position is decoded
    (d2Cache's padding rule). Direct convolution instead of the reference's FFT (G is at most a few thousand).
    """
    B, G = decoded.shape
    if sigma <= 0:
        return torch.ones(B, G, device=decoded.device)
    idx = torch.arange(-G, 2 * G, device=decoded.device, dtype=torch.float32)
    pos = torch.arange(G, device=decoded.device, dtype=torch.float32)
    kernel = torch.exp(-((pos[:, None] - idx[None, :]) ** 2) / (2 * sigma ** 2))  # (G, 3G)
    right = decoded[:, -1:].float().expand(B, G)
    signal = torch.cat([torch.ones(B, G, device=decoded.device), decoded.float(), right], 1)  # (B, 3G)
    return (signal @ kernel.T) / kernel.sum(-1).clamp_min(1e-8)


def nucleus(scores: Tensor, top_p: float, allowed: Tensor) -> Tensor:
    """(B, L) bool: the smallest top set of `allowed` positions holding top_p of the score mass (at least 1)."""
    scores = torch.where(allowed, scores, 0.0)
    probs = scores / (scores.sum(-1, keepdim=True) + 1e-9)
    sorted_probs, order = probs.sort(-1, descending=True)
    keep = (sorted_probs.cumsum(-1) <= top_p) | (top_p >= 1.0)                # top_p = 1: every allowed one
    keep[:, 0] = True
    keep &= allowed.gather(1, order)
    return torch.zeros_like(allowed).scatter(1, order, keep)


def inflate(mask: Tensor, width: int) -> Tensor:
    """Also select every position in a gap of ≤ width between two selected positions. mask: (B, L) bool."""
    B, L = mask.shape
    idx = torch.arange(L, device=mask.device).expand(B, L)
    nxt = torch.where(mask, idx, L).flip(-1).cummin(-1).values.flip(-1)
    prv = torch.where(mask, idx, -1).cummax(-1).values
    return mask | (((nxt - idx) + (idx - prv) <= width) & (prv >= 0) & (nxt < L))


class AttentionKVView(KVView):
    """KVView that runs eager attention and hands the head-mean probabilities to its cache."""

    wants_attention = True

    def __init__(self, cache: "D2Cache", *args) -> None:
        super().__init__(*args)
        self.cache = cache

    def observe_attention(self, q: Tensor, probs: Tensor) -> None:
        self.cache.attention.append(probs.mean(1))   # (B, S, L)


@CACHES.register("d2")
class D2Cache(Cache):
    """d2Cache: certainty-density masked selection + attention-rollout selection, K/V reused elsewhere."""

    row_fields = ("store", "conf", "selected", "width_rows")

    def __init__(self, d2_current_k: int = 32, d2_sigma: float = 10.0, rollout_p: float = 0.1, inflate_w: int = 0,
                 block_length: int | None = None, spec: DiffusionSpec | None = None) -> None:
        check_full_attention(spec, "d2")
        self.k, self.sigma, self.rollout_p, self.inflate_w = d2_current_k, d2_sigma, rollout_p, inflate_w
        self.block_length = block_length
        self.store = KVStore()
        self.conf: Tensor | None = None          # (B, G) last known score of each position
        self.selected: Tensor | None = None      # (B, L) bool: next step's positions
        self.width_rows: list[int] = []          # host, per row: positions it selected for the next step
        self.attention: list[Tensor] = []        # per layer (B, S, L) head-mean probabilities

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        self.dims, self.window, self.attention = (canvas.prompt_length, canvas.logit_shift), window, []
        self.key_mask = canvas.key_mask
        if not self.store or self.selected is None:
            self.compute = self.write = None
        else:
            self.compute, self.write = pack(self.selected, max(1, max(self.width_rows)))
        logits_at, predicts = predictions(self.compute, self.write, canvas, state)
        view = AttentionKVView(self, self.store, self.compute, self.write, canvas.key_mask[:, None, None, :])
        return Plan(compute=self.compute, logits_at=logits_at, predicts=predicts, view=view)

    def rollout(self, L: int) -> Tensor:
        """Column sums of the attention rollout prod_l (A_l + I)/2 (rows of unselected positions: identity)."""
        B = self.key_mask.shape[0]
        device = self.key_mask.device
        compute = torch.arange(L, device=device).expand(B, L) if self.compute is None else self.compute
        write = torch.ones_like(compute, dtype=torch.bool) if self.write is None else self.write
        u = torch.ones(B, L, device=device)
        for attn in reversed(self.attention):                                     # 1^T R_n ... R_1
            coeff = u.gather(1, compute) * write / 2                               # (B, S)
            u = u + torch.einsum("bs,bsl->bl", coeff, attn.float()) - torch.zeros_like(u).scatter_add(1, compute, coeff)
        return u

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        if self.write is not None:  # fillers compute but are not part of the selection: count selected rows
            plan.row_cost = self.write.sum(-1) * len(self.attention)
        P, shift = self.dims
        B, G = state.tokens.shape
        L, device = P + G, state.tokens.device
        conf = torch.where(scores <= 0, scores.exp(), scores).float()             # neg-entropy → (0, 1]
        fresh = torch.isfinite(scores)
        self.conf = torch.where(fresh, conf, self.conf if self.conf is not None else torch.zeros_like(conf))
        remaining = state.is_masked
        # 1. masked positions: confidence x certainty density inside the search window
        score = self.conf * certainty_density(~remaining, self.sigma)
        block = self.window
        Bl = self.block_length or G
        idx = torch.arange(G, device=device)
        meets = remaining.long().cumsum(-1) >= self.k
        min_end = torch.where(meets.any(-1), meets.int().argmax(-1), G - 1)
        search_end = (min_end // Bl + 1) * Bl - 1
        start = torch.where(block.any(-1), block.int().argmax(-1), 0)
        search = (idx >= start[:, None]) & (idx <= search_end[:, None]) & remaining
        score = score + block * score.max(-1, keepdim=True).values                  # in-block bonus (per row)
        top = torch.topk(torch.where(search, score, float("-inf")), min(self.k, G), dim=-1).indices
        chosen = torch.zeros_like(remaining).scatter(1, top, True) & search
        selected = torch.zeros(B, L, dtype=torch.bool, device=device)
        rows = torch.arange(P, P + G, device=device).expand(B, G)
        selected = selected.scatter(1, rows - shift, chosen)                       # Dream: the row before
        # 2. positions decoded this step change their own K/V
        selected |= torch.zeros_like(selected).scatter(1, rows, state.committed_at == state.row_step[:, None] - 1)
        # 3. prompt / decoded positions by attention rollout
        selected |= nucleus(self.rollout(L), self.rollout_p, ~selected & self.key_mask)
        if self.inflate_w > 0:
            selected = inflate(selected, self.inflate_w)
        self.selected = selected & self.key_mask
        self.attention = []

    def host_request(self, state: DecodeState) -> Tensor:
        return self.selected.sum(-1).long()

    def host_reply(self, values: list[int]) -> None:
        self.width_rows = values

    def reset(self, rows: Tensor | None = None) -> None:
        if rows is None:
            self.store.clear()
            self.conf = self.selected = None
            self.width_rows = []
        elif self.selected is not None:   # a new row recomputes every position next step
            self.selected = self.selected.index_fill(0, rows.flatten().long(), True)
            for r in rows.flatten().tolist():
                if r < len(self.width_rows):
                    self.width_rows[r] = self.selected.shape[1]

    def nbytes(self) -> int:
        return self.store.nbytes() + sum(t.numel() * t.element_size() for t in (self.conf, self.selected)
                                         if t is not None)
