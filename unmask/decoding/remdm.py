"""MDLM's ancestral sampler and ReMDM remasking (arXiv 2503.00307; kuleshov-group/remdm), as a commit rule and
a remask rule that share one clock.

Time per row: a window decoded in S = steps_per_window steps takes step i (the row's `window_step`) from
t = 1 − i/S to s = 1 − (i+1)/S on MDLM's log-linear schedule, α = 1 − t (the fraction of tokens decoded).

- commit `remdm`: each masked candidate is decoded with probability (α_s − (1 − σ_t)·α_t) / (1 − α_t), one
  uniform draw per position from the row's own generator (float64); the last step of the window decodes
  everything left (MDLM's final noise removal). With remask 'none' σ = 0: plain MDLM, (α_s − α_t)/(1 − α_t).
  A step may decode nothing (the forward is spent; the reference reuses p_θ then, without an NFE).
- remask `remdm`: each token of the current window decoded before this step goes back to [MASK] with
  probability σ_t, σ_max = min(1, (1 − α_s)/α_t):
  `cap` σ = min(η, σ_max); `rescale` σ = η·σ_max; `conf` σ_i = σ_max·softmax_i(−p_i) over the decoded tokens
  (p_i: probability of token i; see `RemdmRemask`); `loop`: MDLM from α = 0 to α_on while t > t_on, then
  constant α = α_on with σ = η (decode probability η·α_on/(1 − α_on)) for t in (t_off, t_on], then MDLM from
  α_on to 1 for t ≤ t_off. The last step of a window never reopens (σ = 0 there), so every window ends.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.commit import COMMIT, CommitPolicy
from unmask.decoding.remask import REMASK, Changes, RemaskPolicy, StepView
from unmask.decoding.rng import row_uniforms
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError

REMDM_SCHEDULES = ("cap", "rescale", "conf", "loop")


def remdm_rates(window_step: Tensor, steps: int, schedule: str | None, eta: float, t_on: float = 0.55,
                t_off: float = 0.05, alpha_on: float = 0.9) -> tuple[Tensor, Tensor, Tensor]:
    """Per row (B,) float64: the decode probability of a masked position, σ_t for a decoded one (for `conf`
    the factor σ_max that multiplies the softmax), and whether this is the window's last step.

    `schedule` None: plain MDLM (σ = 0)."""
    i = window_step.to(torch.float64)
    last = window_step >= steps - 1
    t, s = (steps - i) / steps, (steps - i - 1) / steps   # exact at grid points (t = t_off included)
    alpha_t, alpha_s = 1 - t, 1 - s
    sigma = torch.zeros_like(t)
    if schedule == "loop":
        before, after = t > t_on, t <= t_off
        ramp_t, ramp_s = (1 - t) * alpha_on / (1 - t_on), (1 - s) * alpha_on / (1 - t_on)
        off = max(t_off, 1e-12)   # t_off = 0: the last phase is empty (t ≥ 1/S > 0)
        tail_t, tail_s = 1 - t * (1 - alpha_on) / off, 1 - s * (1 - alpha_on) / off
        on = torch.full_like(t, alpha_on)
        alpha_t = torch.where(before, ramp_t, torch.where(after, tail_t, on))
        # the ramp ends at α_on (the reference extrapolates past it on the step that crosses t_on: with a coarse
        # grid that step would decode everything before the loop starts)
        alpha_s = torch.where(before, ramp_s.clamp(max=alpha_on), torch.where(after, tail_s, on))
        sigma = torch.where(before | after, sigma, torch.full_like(t, eta))
    elif schedule is not None:
        sigma_max = torch.where(alpha_t > 0, ((1 - alpha_s) / alpha_t.clamp(min=1e-12)).clamp(max=1), 1.0)
        sigma = {"cap": sigma_max.clamp(max=eta), "rescale": eta * sigma_max, "conf": sigma_max}[schedule]
    # conf: masked positions have σ_i = 0 in the reference, so they decode as in MDLM
    sigma_commit = torch.zeros_like(sigma) if schedule == "conf" else sigma
    p_commit = ((alpha_s - (1 - sigma_commit) * alpha_t) / (1 - alpha_t).clamp(min=1e-12)).clamp(0, 1)
    p_commit = torch.where(last, torch.ones_like(p_commit), p_commit)
    sigma = torch.where(last, torch.zeros_like(sigma), sigma.clamp(0, 1))
    return p_commit, sigma, last


@COMMIT.register("remdm")
class RemdmCommit(CommitPolicy):
    """MDLM / ReMDM ancestral step: each masked position decodes with probability
    (α_s − (1 − σ_t)·α_t)/(1 − α_t) (σ from `remdm_schedule` when remask='remdm', else 0 = MDLM); the window's
    last step decodes everything left. Positions are drawn, not ranked: the score is not used."""

    may_commit_nothing = True

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.num_steps % cfg.num_windows:
            raise ConfigError(f"steps ({cfg.num_steps}) must be a multiple of the number of blocks "
                              f"({cfg.num_windows} = gen_length {cfg.gen_length} / block_length {cfg.window_length})")
        if cfg.num_steps > 4 * cfg.gen_length:
            raise ConfigError(f"commit 'remdm' takes every one of its {cfg.num_steps} steps; the engine stops a row "
                              f"after 4·gen_length + 8 steps, so use steps ≤ {4 * cfg.gen_length}")

    def __init__(self, steps_per_window: int, remask: str = "none", remdm_schedule: str = "cap", eta: float = 0.02,
                 t_on: float = 0.55, t_off: float = 0.05, alpha_on: float = 0.9,
                 generators: list[torch.Generator] | None = None) -> None:
        self.steps, self.generators = steps_per_window, generators
        self.schedule = remdm_schedule if remask == "remdm" else None
        self.eta, self.t_on, self.t_off, self.alpha_on = eta, t_on, t_off, alpha_on

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState) -> Tensor:
        p, _, _ = remdm_rates(state.window_step, self.steps, self.schedule, self.eta, self.t_on, self.t_off,
                              self.alpha_on)
        u = row_uniforms(self.generators, candidates.shape[0], (candidates.shape[1],), candidates.device)
        return candidates & (u < p.to(candidates.device)[:, None])


@REMASK.register("remdm")
class RemdmRemask(RemaskPolicy):
    """ReMDM: decoded tokens of the current window go back to [MASK] with probability σ_t (`remdm_schedule`:
    cap / rescale / conf / loop, strength `eta`), drawn from the row's generator. Needs commit='remdm'
    (which decodes with the matching probability and owns the clock). A position may be reopened any number
    of times: the window's last step decodes everything and reopens nothing, so decoding ends after
    steps_per_window steps per window. A row stays on its window until those steps are spent (tokens can
    still be reopened while steps remain), as the reference runs all T steps.

    `conf`: as the reference, p_i is the probability of token i when it was decoded (`StepView.proposed_prob`
    at its commit), kept per row in `DecodeState.memory["remdm_conf"]`."""

    window_scoped = True
    shadow = False
    max_reopen = 2**62

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.commit != "remdm":
            raise ConfigError(f"remask 'remdm' reopens tokens with ReMDM's σ_t, which keeps MDLM's marginals only "
                              f"with its matching decode probability; set commit='remdm' (got {cfg.commit!r})")
        if cfg.remdm_schedule == "loop" and cfg.eta * cfg.alpha_on > 1 - cfg.alpha_on:
            raise ConfigError(f"remdm_schedule 'loop' decodes with probability eta·alpha_on/(1 − alpha_on), which "
                              f"exceeds 1 for eta={cfg.eta}, alpha_on={cfg.alpha_on}; use eta ≤ "
                              f"{(1 - cfg.alpha_on) / cfg.alpha_on:.4g}")

    def __init__(self, block_length: int, steps_per_window: int, remdm_schedule: str = "cap", eta: float = 0.02,
                 t_on: float = 0.55, t_off: float = 0.05, alpha_on: float = 0.9,
                 generators: list[torch.Generator] | None = None) -> None:
        super().__init__(block_length)
        self.steps, self.schedule, self.generators = steps_per_window, remdm_schedule, generators
        self.eta, self.t_on, self.t_off, self.alpha_on = eta, t_on, t_off, alpha_on
        self.needs_probs = remdm_schedule == "conf"
        # with η = 0 (cap / rescale / loop) nothing is ever reopened: behave exactly as remask 'none'
        self.inert = eta == 0 and remdm_schedule != "conf"

    def unsettled(self, state: DecodeState) -> Tensor:
        """Masks, and while the window has steps left its decoded tokens too (they may still be reopened)."""
        if self.inert:
            return state.is_masked
        idx = torch.arange(state.gen_length, device=state.tokens.device)
        in_window = (idx[None, :] + state.block_offset[:, None]) // self.block_length == state.window_index[:, None]
        return state.is_masked | (in_window & (state.window_step < self.steps)[:, None])

    def sigma(self, view: StepView, eligible: Tensor, state: DecodeState) -> Tensor:
        """(B, G) float64 reopening probability of each eligible position (0 elsewhere)."""
        _, sigma, _ = remdm_rates(state.window_step, self.steps, self.schedule, self.eta, self.t_on, self.t_off,
                                  self.alpha_on)
        sigma = sigma.to(eligible.device)[:, None].expand(eligible.shape)
        if self.schedule == "conf":
            neg_p = (-self.decoded_prob(state).double()).masked_fill(~eligible, float("-inf"))
            weights = torch.softmax(neg_p, -1).nan_to_num(0.0)       # rows with nothing eligible: all 0
            sigma = sigma * weights
        return torch.where(eligible, sigma, torch.zeros_like(sigma))

    @staticmethod
    def decoded_prob(state: DecodeState) -> Tensor:
        """(B, G) float32: each decoded token's probability when it was decoded (0 where none is recorded)."""
        kept = state.memory.get("remdm_conf")
        return kept if kept is not None else torch.zeros(state.tokens.shape, device=state.tokens.device)

    def select(self, view: StepView, commit: Tensor, state: DecodeState) -> Changes:
        if self.inert:
            return self.no_changes(state)
        eligible = self.earlier_commits(view, commit, state)
        u = row_uniforms(self.generators, eligible.shape[0], (eligible.shape[1],), eligible.device)
        reopen = eligible & (u < self.sigma(view, eligible, state))
        if self.schedule == "conf":   # remember the probability of this step's commits (finished rows: ignored)
            state.memory["remdm_conf"] = torch.where(commit, view.proposed_prob.float(), self.decoded_prob(state))
        return Changes(reopen, torch.zeros_like(eligible))
