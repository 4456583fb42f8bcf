"""Training-free commit rules beyond LLaDA / Dream / Fast-dLLM: EB-Sampler, dInfer hierarchical decoding,
Dimple confident decoding, DUS dilated unmasking and a cosine (MaskGIT) quota.

Every rule works per row (any batch size), on the device, without a host sync; each one's exact rule is in
its docstring.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from unmask.decoding.commit import (COMMIT, NEG_INF, CommitPolicy, DreamTimestepQuota, LinearQuota, best_one,
                                    top_n)
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError


def positions(G: int, device: torch.device) -> Tensor:
    return torch.arange(G, device=device)


@COMMIT.register("eb")
class EntropyBoundCommit(CommitPolicy):
    """EB-Sampler (arXiv 2505.24857): sort a row's candidates by entropy H ascending and accept the longest
    prefix 1..k with Σ_{i≤k} H_i − max_{i≤k} H_i ≤ eb_gamma (nats), always at least the lowest-entropy one.

    Σ − max bounds the joint mutual information of the accepted tokens. Since the prefix is sorted, max is the
    last element, so the test is "entropy of the earlier ones ≤ γ" (as SGLang's eb_sampling; its default
    γ is 0.15). Needs alg='entropy' (the score is −H).
    """

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.alg != "entropy":
            raise ConfigError(f"commit 'eb' ranks by entropy and needs alg='entropy', got alg={cfg.alg!r}")

    def __init__(self, eb_gamma: float = 0.15) -> None:
        self.gamma = eb_gamma

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        entropy = (-scores).to(torch.float64).clamp(min=0).masked_fill(~candidates, math.inf)
        sorted_h = entropy.sort(dim=-1, stable=True).values                           # (B, G), inf last
        finite = torch.isfinite(sorted_h)
        before = torch.where(finite, sorted_h, 0).cumsum(-1) - torch.where(finite, sorted_h, 0)  # Σ of earlier
        count = ((before <= self.gamma) & finite).sum(-1)                            # a prefix: `before` grows
        return top_n(scores, candidates, count)


@COMMIT.register("hierarchy")
class HierarchyCommit(CommitPolicy):
    """dInfer hierarchical decoding (arXiv 2510.08666, `HierarchyDecoder`): split each row's candidates into
    maximal runs of adjacent positions; from every run take its best-scoring token (the first on ties) when its
    score > low_threshold; add every candidate with score ≥ threshold; always add the row's best candidate.

    Per row for any batch size (dInfer's reference runs batch 1 only).
    """

    def __init__(self, threshold: float = 0.9, low_threshold: float = 0.4) -> None:
        self.threshold, self.low_threshold = threshold, low_threshold

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        B, G = scores.shape
        idx = positions(G, scores.device).expand(B, G)
        starts = candidates.clone()
        starts[:, 1:] &= ~candidates[:, :-1]
        run = torch.where(candidates, starts.long().cumsum(-1), 0)                 # (B, G): 1, 2, … per run; 0 off
        masked = scores.masked_fill(~candidates, NEG_INF)
        run_max = torch.full((B, G + 1), NEG_INF, dtype=scores.dtype, device=scores.device)
        run_max = run_max.scatter_reduce(1, run, masked, reduce="amax")
        is_max = candidates & (masked == run_max.gather(1, run))
        first = torch.full((B, G + 1), G, dtype=torch.long, device=scores.device)
        first = first.scatter_reduce(1, run, torch.where(is_max, idx, G), reduce="amin")
        run_pick = is_max & (idx == first.gather(1, run)) & (scores > self.low_threshold)
        return run_pick | ((scores >= self.threshold) & candidates) | best_one(scores, candidates)


@COMMIT.register("dimple")
class DimpleCommit(DreamTimestepQuota):
    """Dimple confident decoding (arXiv 2505.16990, `decoding_pipeline="dim"`): commit every candidate with
    score > threshold (no forced argmax); a row where none passes falls back to Dream's timestep quota for its
    step, at least one token (Dimple skips to the next timestep with a non-zero quota; we commit one at the
    current one). The window's last step commits everything left, so the budget is Dream's.

    Dimple computes the score from the un-tempered distribution, which is what unmask's scores always do.
    """

    may_commit_nothing = False

    def __init__(self, steps_per_window: int, threshold: float = 0.95, eps: float = 1e-3,
                 generators: list[torch.Generator] | None = None) -> None:
        super().__init__(steps_per_window, eps=eps, alg_temp=None, generators=generators)
        self.threshold = threshold

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        confident = (scores > self.threshold) & candidates
        quota = top_n(scores, candidates, self.quota(candidates, state))
        last = (state.window_step >= self.steps - 1)[:, None]
        return torch.where(confident.any(-1, keepdim=True) & ~last, confident, quota)


def dilated_levels(length: int, base: int = 2) -> list[int]:
    """DUS level of each position 0..length-1 of a block: stride s = length // base, then s // base, … down to 1;
    a level holds the not-yet-assigned positions p with p % s == 0; any leftovers form a final level, which is
    merged into the one before it when smaller (as omerlux/DUS `merge_last_level`). Returns level per position."""
    level = [-1] * length
    stride, n = length // base, 0
    while stride >= 1:
        fresh = [p for p in range(0, length, stride) if level[p] < 0]
        if fresh:
            for p in fresh:
                level[p] = n
            n += 1
        stride //= base
    if any(v < 0 for v in level):  # length < base or not reachable by the strides
        level = [n if v < 0 else v for v in level]
        n += 1
    sizes = [level.count(k) for k in range(n)]
    if n >= 2 and sizes[-1] < sizes[-2]:
        level = [n - 2 if v == n - 1 else v for v in level]
    return level


@COMMIT.register("dus")
class DilatedCommit(CommitPolicy):
    """DUS dilated unmasking (arXiv 2506.19037; omerlux/DUS `generate_scheduled(scheduler="dilated")`): the
    positions of a block are committed in a fixed coarse-to-fine order. With L the block length and base b,
    step 0 commits positions p ≡ 0 (mod L//b), step 1 the new ones with p ≡ 0 (mod L//b²), … down to stride 1
    (see `dilated_levels`): ⌈log_b L⌉ steps per block (block 32: 2, 2, 4, 8, 16 tokens), independent of the
    scores. Step k commits every candidate of level ≤ k; a row left with candidates but none scheduled (a cache
    that did not predict them) commits its best one. The reference's optional remasking of low-confidence
    scheduled tokens is not part of this rule.
    """

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.dus_base < 2:
            raise ConfigError(f"commit 'dus' needs dus_base ≥ 2 (the stride divisor), got {cfg.dus_base}")

    def __init__(self, block_length: int, dus_base: int = 2) -> None:
        self.block_length, self.base = block_length, dus_base
        self._levels: dict[tuple[int, str], Tensor] = {}

    def levels(self, G: int, device: torch.device) -> Tensor:
        L = min(self.block_length, G)
        key = (G, str(device))
        if key not in self._levels:
            per_block = torch.tensor(dilated_levels(L, self.base), dtype=torch.long)
            self._levels[key] = per_block[torch.arange(G) % L].to(device)
        return self._levels[key]

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        level = self.levels(scores.shape[1], scores.device)                                # (G,)
        chosen = candidates & (level[None, :] <= state.window_step[:, None])
        return chosen | (best_one(scores, candidates) & ~chosen.any(-1, keepdim=True))


@COMMIT.register("cosine")
class CosineQuota(LinearQuota):
    """MaskGIT cosine schedule (arXiv 2202.04200): a window of n masks decoded in S steps keeps
    floor(n · cos(π/2 · (i+1)/S)) masked after step i, so step i commits the difference of those counts
    (the cumulative n·(1 − cos(π/2 · (i+1)/S)), rounded up); a step whose difference is 0 commits one (as
    MaskGIT's `max(1, …)`). Few tokens first, many at the end; the last step commits everything left.
    """

    def quota(self, state: DecodeState) -> Tensor:
        n = state.window_size.double()
        i = state.window_step.clamp(max=self.steps - 1).double()

        def kept(k: Tensor) -> Tensor:
            return torch.floor(n * torch.cos(math.pi / 2 * k / self.steps).clamp(min=0))

        return (kept(i) - kept(i + 1)).long()
