"""One denoising step of a group of rows: plan → forward (one NFE) → sample → score → commit → remask/edit → apply.

Each axis is one object call; nothing here knows which cache, commit rule or model it runs.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from unmask.cache import Canvas, Plan
from unmask.cache.base import gather_rows
from unmask.decoding import DecodeState
from unmask.decoding.remask import StepView, probabilities
from unmask.engine.build import DecodeParts


def forward(model: nn.Module, canvas: Canvas, state: DecodeState, plan: Plan) -> Tensor:
    """Run the model on the plan's positions; logits (B, N, V) for the plan's `predicts`."""
    ids, positions = canvas.ids(state), canvas.positions
    if plan.compute is not None:
        ids, positions = gather_rows(ids, plan.compute), gather_rows(positions, plan.compute)
    return model(ids, positions, plan.view, plan.logits_at)


def to_region(values: Tensor, plan: Plan, fill: Tensor) -> Tensor:
    """Scatter per-prediction values (B, N) into a (B, G) copy of `fill`."""
    return fill.scatter(1, plan.predicts, values.to(fill.dtype))


def denoise_step(model: nn.Module, canvas: Canvas, state: DecodeState, parts: DecodeParts) -> tuple[Plan, Tensor]:
    """Advance every row of `state` by one step. Returns the plan and (B,) bool: rows whose logits were not finite."""
    window_index, window = parts.schedule.current(state)                           # (B,), (B, G) bool
    state.open_windows(window_index, window)
    plan = parts.cache.plan(canvas, state, window)
    logits = forward(model, canvas, state, plan)                                   # (B, N, V): one NFE
    broken = ~torch.isfinite(logits).flatten(1).all(-1)                            # (B,)
    proposed_n = parts.sampler(logits, parts.generators)                           # (B, N)
    scores_n = parts.score(logits, proposed_n, parts.generators)                   # (B, N)
    view = step_view(logits, proposed_n, scores_n, plan, state, window, parts.remask.needs_probs)
    candidates = window & state.is_masked & view.predicted & ~state.finished[:, None]
    commit = parts.commit.select(view.scores, candidates, state)
    changes = parts.remask.select(view, commit, state)
    state.apply(commit, view.proposed, changes.reopen, changes.edit)
    parts.cache.update(plan, state, view.scores)
    state.update_finished(parts.remask.stop_limit(state) if parts.stop_at_eos else None)
    return plan, broken


def step_view(logits: Tensor, proposed_n: Tensor, scores_n: Tensor, plan: Plan, state: DecodeState, window: Tensor,
              needs_probs: bool) -> StepView:
    """The forward's per-prediction values scattered onto the (B, G) generated region."""
    neg_inf = torch.full(state.tokens.shape, float("-inf"), dtype=scores_n.dtype, device=scores_n.device)
    view = StepView(proposed=to_region(proposed_n, plan, state.tokens), scores=to_region(scores_n, plan, neg_inf),
                    predicted=to_region(torch.ones_like(proposed_n, dtype=torch.bool), plan, torch.zeros_like(window)),
                    window=window)
    if needs_probs:
        current_n = state.tokens.gather(1, plan.predicts)
        proposed_p, current_p = probabilities(logits, proposed_n, current_n)
        zero = torch.zeros(state.tokens.shape, dtype=torch.float32, device=state.tokens.device)
        view.proposed_prob, view.current_prob = to_region(proposed_p, plan, zero), to_region(current_p, plan, zero)
    return view
