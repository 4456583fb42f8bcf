"""Remask rules: after a step's commits, reopen committed positions (back to [MASK]) or edit them to another token.

A rule sees what the step's forward said about every predicted position (`StepView`: the proposed token,
its score, and when the rule asks for them the probability of the proposal and of the current token) and
this step's commits. Every rule here acts inside the row's current window (block) only, so:
- tokens of finished blocks are final: streaming sends them, and prefix/dual caches stay valid;
- early stop is exact: a row stops once every position up to the end of the block holding its first EOS is
  committed; later blocks never reopen earlier ones, so those tokens are what decoding to the end gives;
- decoding always ends: a position is reopened at most `max_reopen` (1) times.
Rules that verify (`low-confidence`, `wino`) re-predict each of the block's commits from everything else
(leave-one-out, WINO's shadow block: extra queries in the same forward, one NFE, see engine/step.py). A row
stays on a block until the drafts of its last step have been verified once (`unsettled`): a block that
commits all its tokens in one step spends one more forward to check them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from unmask.decoding.commit import ranks
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError
from unmask.registry import Registry


@dataclass
class StepView:
    """One step's forward at the generated positions, (B, G) each."""

    proposed: Tensor                 # long: the sampler's token at predicted positions (current token elsewhere)
    scores: Tensor                   # float: the score of `proposed`, -inf where not predicted
    predicted: Tensor                # bool: positions the forward gave logits for
    window: Tensor                   # bool: the row's current window
    proposed_prob: Tensor | None = None   # float: probability of `proposed` (rules with needs_probs)
    current_prob: Tensor | None = None    # float: probability of the token the canvas holds (needs_probs)
    logits: Tensor | None = None          # (B, N, V): the decoding logits, at `predicts` (commit rules with needs_view)
    predicts: Tensor | None = None        # (B, N) long: the generated positions those logits predict


@dataclass
class Changes:
    """What a remask rule does to committed positions: reopen them, or edit them to `StepView.proposed`."""

    reopen: Tensor   # (B, G) bool
    edit: Tensor     # (B, G) bool


def probabilities(logits: Tensor, proposed: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax probabilities (float32) of the proposed and of the current tokens. logits (B, N, V), ids (B, N)."""
    logp = logits.float().log_softmax(-1)
    return logp.gather(-1, proposed[..., None]).squeeze(-1).exp(), logp.gather(-1, current[..., None]).squeeze(-1).exp()


class RemaskPolicy(ABC):
    needs_probs = False     # the step computes StepView.proposed_prob / current_prob for this rule
    window_scoped = False   # acts only inside the current window (see the module docstring)
    shadow = False          # current_prob comes from the leave-one-out shadow block (engine/step.py)
    max_reopen = 1          # a position is reopened at most this many times (so decoding always ends)

    @classmethod
    def check_config(cls, cfg) -> None:
        """Raise ConfigError when `cfg` cannot work with this rule, naming why."""
        if cls.shadow and cfg.cache != "none":
            raise ConfigError(f"remask {cfg.remask!r} verifies tokens with a shadow block in the forward, which "
                              f"the caches do not plan yet; use cache='none' (got {cfg.cache!r})")
        if cls.shadow and cfg.cfg_scale > 0:
            raise ConfigError(f"remask {cfg.remask!r} with cfg_scale > 0 is not supported yet (the shadow block "
                              f"and the unconditional copy would both need guiding)")

    def unsettled(self, state: DecodeState) -> Tensor:
        """(B, G) bool: positions that may still change: the masked ones, and for a verifying rule the drafts of
        the last step that no forward has verified yet (and that may still be reopened). The schedule keeps a
        row on their block, and early stop waits for them."""
        if not self.shadow:
            return state.is_masked
        drafts = (state.committed_at == (state.row_step - 1)[:, None]) & (state.reopened < self.max_reopen)
        return state.is_masked | (drafts & ~state.is_masked & (state.row_step > 0)[:, None])

    def __init__(self, block_length: int | None = None) -> None:
        self.block_length = block_length

    @abstractmethod
    def select(self, view: StepView, commit: Tensor, state: DecodeState) -> Changes:
        """After this step's `commit` (B, G) bool, before it is applied: the committed positions to change."""

    def final_length(self, state: DecodeState) -> Tensor:
        """(B,) leading generated tokens that can never change again (streaming sends exactly these).

        Committed and left of every mask; for a window-scoped rule also left of the current window."""
        final = state.final_length()
        if not self.window_scoped:
            return final
        window_start = (self.window_of(final, state) * self.block_length - state.block_offset).clamp(min=0)
        return torch.minimum(final, window_start)

    def stop_limit(self, state: DecodeState) -> Tensor:
        """(B,) a row may stop once no mask is left before this index (with EOS stopping on)."""
        eos = state.first_eos()
        if not self.window_scoped:
            return eos
        end = (self.window_of(eos, state) + 1) * self.block_length - state.block_offset
        return torch.where(eos < state.gen_length, end.clamp(max=state.gen_length), eos)

    def window_of(self, position: Tensor, state: DecodeState) -> Tensor:
        return (position.clamp(max=state.gen_length - 1) + state.block_offset) // self.block_length

    def no_changes(self, state: DecodeState) -> Changes:
        none = torch.zeros_like(state.is_masked)
        return Changes(none, none)

    def earlier_commits(self, view: StepView, commit: Tensor, state: DecodeState) -> Tensor:
        """(B, G) bool: committed before this step, in the current window, predicted, row still running."""
        return view.window & view.predicted & ~state.is_masked & ~commit & ~state.finished[:, None]


REMASK: Registry[type[RemaskPolicy]] = Registry("remask rule")


@REMASK.register("none")
class NoRemask(RemaskPolicy):
    """Committed tokens are final (LLaDA, Dream, Fast-dLLM)."""

    def select(self, view: StepView, commit: Tensor, state: DecodeState) -> Changes:
        return self.no_changes(state)


def lowest(values: Tensor, eligible: Tensor, cap: Tensor) -> Tensor:
    """(B, G) bool: the cap[b] eligible positions of each row with the lowest values (none where cap is 0)."""
    return eligible & (ranks(-values.float(), eligible) < cap[:, None])


@REMASK.register("low-confidence")
class LowConfidenceRemask(RemaskPolicy):
    """Reopen the current block's earlier commits whose probability, re-predicted from everything else (the
    shadow block in the same forward), fell below `remask_threshold`: lowest first, at most
    `remask_budget` per row and step, each position at most once."""

    needs_probs = True
    window_scoped = True
    shadow = True

    def __init__(self, block_length: int, remask_threshold: float = 0.9, remask_budget: int | None = None) -> None:
        super().__init__(block_length)
        self.threshold, self.budget = remask_threshold, remask_budget

    def select(self, view: StepView, commit: Tensor, state: DecodeState) -> Changes:
        eligible = self.earlier_commits(view, commit, state) & (view.current_prob < self.threshold) & \
            (state.reopened < self.max_reopen)
        cap = torch.full_like(state.nfe, state.gen_length if self.budget is None else self.budget)
        return Changes(lowest(view.current_prob, eligible, cap), torch.zeros_like(eligible))


@REMASK.register("wino")
class WinoRemask(LowConfidenceRemask):
    """WINO narrow-out (arXiv 2507.18578): drafted tokens of the current block that a leave-one-out
    re-prediction (WINO's shadow block, in the same forward) no longer supports above
    `remask_threshold` (τ2, 0.9) go back to [MASK]. Pair it with a low commit threshold (wide-in drafting, τ1).
    Unlike the paper, a position is reopened at most once, which guarantees the decode ends."""


@REMASK.register("edit")
class TokenEditRemask(RemaskPolicy):
    """LLaDA2.1 token editing (SGLang JointThreshold): a committed token of the current block is replaced by
    the model's proposal when they differ and the proposal's probability exceeds `edit_threshold`. Edited
    tokens stay committed; nothing is reopened, so every step still commits ≥ 1 mask."""

    needs_probs = True
    window_scoped = True

    def __init__(self, block_length: int, edit_threshold: float = 0.9) -> None:
        super().__init__(block_length)
        self.threshold = edit_threshold

    def select(self, view: StepView, commit: Tensor, state: DecodeState) -> Changes:
        edit = self.earlier_commits(view, commit, state) & (view.proposed != state.tokens) & \
            (view.proposed_prob > self.threshold)
        return Changes(torch.zeros_like(edit), edit)
