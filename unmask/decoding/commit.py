"""Commit rules: from the scores of the candidate positions, choose which masked positions to fill now.

Contract (every rule, tested over the registry): the result is a subset of `candidates`, holds at least one
position in every row that has a candidate (unless the rule declares `may_commit_nothing`, and then it still
finishes every window within its step budget), and is computed on the device without a host sync.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.decoding.rng import row_uniforms
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.registry import Registry

NEG_INF = float("-inf")


class CommitPolicy(ABC):
    # True for a rule that reproduces a reference which spends some forwards committing nothing (Dream's floored
    # quota); such a rule must still empty every window within its step budget.
    may_commit_nothing: bool = False
    # True for a rule that reads the step's logits: `select` then gets `view` (a StepView with `logits` (B, N, V)
    # at `predicts` (B, N) positions of the generated region).
    needs_view: bool = False

    @classmethod
    def check_config(cls, cfg) -> None:
        """Raise ConfigError when `cfg` (a DecodeConfig) cannot work with this rule, naming why."""

    def prepare(self, state: DecodeState, window: Tensor) -> Tensor | None:
        """Called before the step's forward: (B, G) bool, the generated positions the forward may see (the
        others are dropped from its input), or None for all. A rule with per-row phases advances them here."""
        return None

    @abstractmethod
    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState, view=None) -> Tensor:
        """scores: (B, G) float (any value outside candidates); candidates: (B, G) bool → (B, G) bool."""


COMMIT: Registry[type[CommitPolicy]] = Registry("commit rule")


def check_quota(cfg) -> None:
    """Quota rules spread `steps` evenly over the blocks and commit at least one token per step."""
    if cfg.num_steps % cfg.num_windows:
        raise ConfigError(f"steps ({cfg.num_steps}) must be a multiple of the number of blocks "
                          f"({cfg.num_windows} = gen_length {cfg.gen_length} / block_length {cfg.window_length})")
    if cfg.steps_per_window > cfg.window_length:
        raise ConfigError(f"{cfg.steps_per_window} steps per block cannot each commit a token of a "
                          f"{cfg.window_length}-token block; lower steps to ≤ {cfg.gen_length}")


def ranks(scores: Tensor, candidates: Tensor) -> Tensor:
    """(B, G) long: 0 for each row's best candidate, 1 for the next, …; non-candidates rank last."""
    masked = scores.masked_fill(~candidates, NEG_INF)
    order = masked.argsort(dim=-1, descending=True, stable=True)  # (B, G)
    position_rank = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, position_rank)


def top_n(scores: Tensor, candidates: Tensor, n: Tensor, at_least_one: bool = True) -> Tensor:
    """The n[b] best candidates of each row (at least one unless `at_least_one` is False). n: (B,) long."""
    return (ranks(scores, candidates) < (n.clamp(min=1) if at_least_one else n)[:, None]) & candidates


def best_one(scores: Tensor, candidates: Tensor) -> Tensor:
    return top_n(scores, candidates, torch.ones(scores.shape[0], dtype=torch.long, device=scores.device))


@COMMIT.register("linear")
class LinearQuota(CommitPolicy):
    """LLaDA: a window of n masks decoded in S steps commits n // S per step, one more in the first n % S."""

    @classmethod
    def check_config(cls, cfg) -> None:
        check_quota(cfg)

    def __init__(self, steps_per_window: int) -> None:
        self.steps = steps_per_window

    def quota(self, state: DecodeState) -> Tensor:
        base, extra = state.window_size // self.steps, state.window_size % self.steps  # (B,)
        return base + (state.window_step < extra).long()

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        return top_n(scores, candidates, self.quota(state))


@COMMIT.register("dream")
class DreamTimestepQuota(CommitPolicy):
    """Dream: timesteps t_i = linspace(1, eps, S+1); step i commits int(masked · (1 − t_{i+1}/t_i)), the rest
    at the last step. Where the flooring gives 0 the step commits nothing, as Dream's diffusion_generate does
    (the forward is spent; e.g. steps == gen_length); the last step of the window commits everything left.

    With `alg_temp` > 0 the positions are sampled from softmax(score / alg_temp) instead of taken top-n.
    """

    @classmethod
    def check_config(cls, cfg) -> None:
        check_quota(cfg)

    may_commit_nothing = True

    def __init__(self, steps_per_window: int, eps: float = 1e-3, alg_temp: float | None = None,
                 generators: list[torch.Generator] | None = None) -> None:
        self.steps, self.eps, self.alg_temp, self.generators = steps_per_window, eps, alg_temp, generators

    def quota(self, candidates: Tensor, state: DecodeState) -> Tensor:
        ts = torch.linspace(1, self.eps, self.steps + 1, device=candidates.device)  # float32, as Dream
        i = state.window_step.clamp(max=self.steps - 1)
        n_masked = candidates.sum(-1).float()  # (B,)
        n = (n_masked * (1 - ts[i + 1] / ts[i])).long()
        return torch.where(state.window_step >= self.steps - 1, n_masked.long(), n)

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        n = self.quota(candidates, state)
        if not self.alg_temp:
            return top_n(scores, candidates, n, at_least_one=False)
        return self.sample_positions(scores, candidates, n)

    def sample_positions(self, scores: Tensor, candidates: Tensor, n: Tensor) -> Tensor:
        """Draw n positions per row without replacement (Gumbel top-k ≡ sequential multinomial)."""
        logp = torch.log_softmax(scores.masked_fill(~candidates, NEG_INF).double() / self.alg_temp, dim=-1)
        u = row_uniforms(self.generators, scores.shape[0], (scores.shape[1],), scores.device)   # (B, G)
        return top_n(logp - torch.log(-torch.log(u)), candidates, n, at_least_one=False)


@COMMIT.register("threshold")
class ThresholdCommit(CommitPolicy):
    """Fast-dLLM (2505.22618): every candidate with score ≥ threshold, and always the best one."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        return ((scores >= self.threshold) & candidates) | best_one(scores, candidates)


@COMMIT.register("entropy-threshold")
class EntropyThresholdCommit(ThresholdCommit):
    """dParallel (2509.26488): every candidate whose entropy is below `threshold` nats, always the lowest one.

    Needs the `entropy` score (negative entropy), so the test is score ≥ −threshold.
    """

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.alg != "entropy":
            raise ConfigError(f"commit 'entropy-threshold' needs alg='entropy', got alg={cfg.alg!r}")

    def __init__(self, threshold: float) -> None:
        super().__init__(-threshold)


@COMMIT.register("factor")
class FactorCommit(CommitPolicy):
    """Fast-dLLM factor rule: with candidates sorted c(1) ≥ c(2) ≥ …, accept rank r while
    (r + 1)(1 − c(r)) ≤ factor (rank 1 always). As in the reference, a first failure at the last rank
    accepts every candidate.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        G = scores.shape[1]
        sorted_scores = scores.masked_fill(~candidates, NEG_INF).sort(dim=-1, descending=True).values  # (B, G)
        rank = torch.arange(G, device=scores.device)
        bound = 1 - self.factor / (rank + 2).to(sorted_scores.dtype)
        bound[0] = NEG_INF
        n_cand = candidates.sum(-1)  # (B,)
        failing = (sorted_scores < bound) & (rank[None, :] < n_cand[:, None])
        first_fail = torch.where(failing, rank, G).min(-1).values
        count = torch.where((first_fail >= n_cand - 1), n_cand, first_fail)
        return top_n(scores, candidates, count)
