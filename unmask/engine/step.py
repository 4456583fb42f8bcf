"""One denoising step of a group of rows: plan → forward (one NFE) → sample → score → commit → remask/edit → apply.

Each axis is one object call; nothing here knows which cache, commit rule or model it runs.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from unmask.cache import Canvas, Plan
from unmask.cache.base import gather_rows
from unmask.cache.kv_store import MaskView
from unmask.decoding import DecodeState
from unmask.decoding.remask import StepView, probabilities
from unmask.engine.build import DecodeParts
from unmask.engine.guided import paired_rows, paired_state
from unmask.engine.latent import LatentBound


def forward(model: nn.Module, canvas: Canvas, state: DecodeState, plan: Plan,
            inputs: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """Run the model on the plan's positions; logits (B, N, V) for the plan's `predicts`. inputs: the forward's
    (ids, positions, logits_at) already written into the runner's static buffers (engine/buffers.py), or None."""
    if inputs is not None:
        return model(inputs[0], inputs[1], plan.view, inputs[2])
    ids, positions = canvas.ids(state), canvas.positions
    if plan.compute is not None:
        ids, positions = gather_rows(ids, plan.compute), gather_rows(positions, plan.compute)
    return model(ids, positions, plan.view, plan.logits_at)


def to_region(values: Tensor, predicts: Tensor, fill: Tensor) -> Tensor:
    """Scatter per-prediction values (B, N) into a (B, G) copy of `fill` at `predicts` (B, N)."""
    return fill.scatter(1, predicts, values.to(fill.dtype))


def denoise_step(model: nn.Module, canvas: Canvas, state: DecodeState, parts: DecodeParts,
                 core: Callable | None = None) -> tuple[Plan, Tensor]:
    """Advance every row of `state` by one step. Returns the plan and (B,) bool: rows whose logits were not finite.

    core: the forward and the decision of a plain step (`forward_and_decide`, or the runner's compiled version
    of it); steps with guidance, a shadow block or an AR verifier run their own forwards eagerly. A λ-conditioned
    model gets this step's λ per row, drawn first from each row's generator (decoding/latent.py)."""
    if parts.latent is not None:
        model = LatentBound(model, parts.latent.draw(parts.generators, state.batch, state.tokens.device))
    unsettled = parts.remask.unsettled(state)                                      # (B, G) bool
    window_index, window = parts.schedule.current(state, unsettled)                # (B,), (B, G) bool
    state.open_windows(window_index, window)
    visible = parts.commit.prepare(state, window)                                  # e.g. SlowFast's span
    seen = canvas if visible is None else canvas.hiding(visible)
    if parts.guidance is None and not parts.remask.shadow and parts.verify is None:
        plan = parts.cache.plan(seen, state, window)
        view, commit, broken = (core or forward_and_decide)(model, seen, state, plan, window, parts)  # one NFE
    else:
        plan, logits, shadow = run_forward(model, seen, state, window, parts)      # (B, N, V): one NFE
        view, commit, broken = decide(logits, plan.predicts[:state.batch], window, state, parts, shadow, seen)
    changes = parts.remask.select(view, commit, state)
    state.apply(commit, view.proposed, changes.reopen, changes.edit)
    update_cache(parts, plan, seen, state, view.scores)
    state.update_finished(parts.remask.stop_limit(state) if parts.stop_at_eos else None, parts.remask.unsettled(state))
    return plan, broken


def forward_and_decide(model: nn.Module, canvas: Canvas, state: DecodeState, plan: Plan, window: Tensor,
                       parts: DecodeParts, inputs: tuple[Tensor, Tensor, Tensor] | None = None
                       ) -> tuple[StepView, Tensor, Tensor]:
    """The plan's forward and the step's decision; device work only, no host sync (the runner compiles it).
    inputs: see `forward`."""
    return decide(forward(model, canvas, state, plan, inputs), plan.predicts, window, state, parts, canvas=canvas)


def decide(logits: Tensor, predicts: Tensor, window: Tensor, state: DecodeState, parts: DecodeParts,
           shadow: tuple[Tensor, Tensor] | None = None, canvas: Canvas | None = None
           ) -> tuple[StepView, Tensor, Tensor]:
    """Logits (B, N, V) at `predicts` → the step's view, its commits (B, G) bool and (B,) bool: non-finite rows.
    `canvas` (what the forward saw) is read only by an AR verifier."""
    logits = parts.fusion(logits, predicts, window, state)                         # e.g. dInfer's credit
    broken = ~torch.isfinite(logits).flatten(1).all(-1)                            # (B,)
    proposed_n = parts.sampler(logits, parts.generators)                           # (B, N)
    scores_n = parts.score(logits, proposed_n, parts.generators)                   # (B, N)
    view = step_view(logits, proposed_n, scores_n, predicts, state, window, parts.remask.needs_probs, shadow)
    candidates = window & state.is_masked & view.predicted & ~state.finished[:, None]
    if parts.verify is not None:   # AR-verified decoding (engine/verify.py): the verifier decides the commits
        commit, view.proposed = parts.verify.decide(logits, predicts, candidates, state, canvas, parts.generators)
    elif parts.commit.needs_view:
        view.logits, view.predicts = logits, predicts
        commit = parts.commit.select(view.scores, candidates, state, view)
    else:
        commit = parts.commit.select(view.scores, candidates, state)
    if parts.eotp is not None:                                                     # Learn2PD's EoTP
        commit = parts.eotp.extend(commit, view.proposed, proposed_probability(logits, proposed_n, predicts, state),
                                   view.predicted, state)
    return view, commit, broken


def proposed_probability(logits: Tensor, proposed_n: Tensor, predicts: Tensor, state: DecodeState) -> Tensor:
    """(B, G) float32: the probability of each predicted position's proposed token (0 where not predicted)."""
    p, _ = probabilities(logits, proposed_n, proposed_n)
    return to_region(p, predicts, torch.zeros(state.tokens.shape, dtype=torch.float32, device=p.device))


def run_forward(model: nn.Module, canvas: Canvas, state: DecodeState, window: Tensor, parts: DecodeParts
                ) -> tuple[Plan, Tensor, tuple[Tensor, Tensor] | None]:
    """The step's one forward: its plan, the logits to decode from, and for a verifying remask rule its
    leave-one-out predictions of the current window's tokens ((B, W) positions, (B, W, V) logits), else None.
    With guidance every row also runs as its guidance copy in the same batched forward, rows [main; copies],
    each copy with cache rows of its own (engine/guided.py); the plan covers all 2B rows."""
    if parts.guidance is not None:
        both, both_state = paired_rows(canvas, state, parts.guidance)
        plan = parts.cache.plan(both, both_state, window.repeat(2, 1))
        plan.row_passes = 2
        main, extra = forward(model, both, both_state, plan).chunk(2)
        return plan, parts.guidance.combine(main, extra), None
    plan = parts.cache.plan(canvas, state, window)
    if parts.remask.shadow:
        logits, shadow = shadow_forward(model, canvas, state, window, plan, min(parts.remask.block_length,
                                                                                 state.gen_length))
        return plan, logits, shadow
    return plan, forward(model, canvas, state, plan), None


def update_cache(parts: DecodeParts, plan: Plan, canvas: Canvas, state: DecodeState, scores: Tensor) -> None:
    """The cache sees the step's commits; with guidance its copy rows see the same ones, and a row's cost
    (`plan.row_cost`, when the cache sets one) is that of both its forward rows."""
    if parts.guidance is None:
        parts.cache.update(plan, state, scores)
        return
    _, copy_tokens = parts.guidance.variant(canvas.prompt, canvas.key_mask[:, :canvas.prompt_length], state.tokens)
    parts.cache.update(plan, paired_state(state, copy_tokens), scores.repeat(2, 1))
    if plan.row_cost is not None and plan.row_cost.shape[0] == 2 * state.batch:
        plan.row_cost = plan.row_cost.view(2, state.batch).sum(0)


def shadow_forward(model: nn.Module, canvas: Canvas, state: DecodeState, window: Tensor, plan: Plan, W: int
                   ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """WINO's shadow block, in the same forward: W extra queries per row, one per position p of the current
    window, each attending to every key of its row except token p itself, so its logits re-predict p from
    everything else (leave-one-out). Unshifted models: the query is a [MASK] at p's position; shifted
    models (Dream): a copy of the token before p, whose logits predict p. The real positions never see
    the shadow queries, so the decoding logits are unchanged."""
    B, L, P, shift = canvas.key_mask.shape[0], canvas.key_mask.shape[1], canvas.prompt_length, canvas.logit_shift
    order = torch.where(window, torch.arange(window.shape[1], device=window.device), window.shape[1])
    where = order.sort(-1).values[:, :W].clamp(max=state.gen_length - 1)        # (B, W) window positions
    target = P + where                                                          # canvas index of each token
    source = target - shift                                                     # the query that predicts it
    ids = canvas.ids(state)
    shadow_ids = torch.full_like(source, state.mask_id) if shift == 0 else ids.gather(1, source)
    base = plan.view.mask if isinstance(plan.view, MaskView) else canvas.key_mask[:, None, None, :]
    base = base.expand(B, 1, L, L)
    keys = torch.arange(L, device=ids.device)
    see = base.gather(2, source[:, None, :, None].expand(B, 1, W, L)) & (keys != target[:, :, None])[:, None]
    mask = torch.cat([torch.cat([base, base.new_zeros(B, 1, L, W)], -1),
                      torch.cat([see, torch.eye(W, dtype=torch.bool, device=ids.device).expand(B, 1, W, W)], -1)], 2)
    logits_at = torch.cat([plan.logits_at, L + torch.arange(W, device=ids.device).expand(B, W)], 1)
    out = model(torch.cat([ids, shadow_ids], 1), torch.cat([canvas.positions, canvas.positions.gather(1, source)], 1),
                MaskView(mask), logits_at)
    plan.step_cost = (L + W) * len(model.layers)
    plan.row_cost = torch.full((B,), plan.step_cost, device=ids.device)
    return out[:, :plan.logits_at.shape[1]], (where, out[:, plan.logits_at.shape[1]:])


def step_view(logits: Tensor, proposed_n: Tensor, scores_n: Tensor, predicts: Tensor, state: DecodeState,
              window: Tensor, needs_probs: bool, shadow: tuple[Tensor, Tensor] | None = None) -> StepView:
    """The forward's per-prediction values scattered onto the (B, G) generated region. With a shadow block the
    current tokens' probabilities are its leave-one-out predictions (only there: elsewhere 0)."""
    neg_inf = torch.full(state.tokens.shape, float("-inf"), dtype=scores_n.dtype, device=scores_n.device)
    predicted = to_region(torch.ones_like(proposed_n, dtype=torch.bool), predicts, torch.zeros_like(window))
    view = StepView(proposed=to_region(proposed_n, predicts, state.tokens),
                    scores=to_region(scores_n, predicts, neg_inf), predicted=predicted, window=window)
    if needs_probs:
        current_n = state.tokens.gather(1, predicts)
        proposed_p, current_p = probabilities(logits, proposed_n, current_n)
        zero = torch.zeros(state.tokens.shape, dtype=torch.float32, device=state.tokens.device)
        view.proposed_prob = to_region(proposed_p, predicts, zero)
        view.current_prob = to_region(current_p, predicts, zero)
        if shadow is not None:
            where, shadow_logits = shadow
            _, held_p = probabilities(shadow_logits, state.tokens.gather(1, where), state.tokens.gather(1, where))
            view.current_prob = zero.scatter(1, where, held_p)
    return view
