"""denoise(): the decode loop. One step = one model forward (NFE); each axis is one object call."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from unmask.cache import Cache, Canvas, Plan
from unmask.cache.base import gather_rows
from unmask.decoding import DecodeState
from unmask.engine.build import DecodeParts

StepCallback = Callable[[DecodeState, Tensor], None]


def forward(model: nn.Module, canvas: Canvas, state: DecodeState, plan: Plan) -> Tensor:
    """Run the model on the plan's positions; logits (B, N, V) for the plan's `predicts`."""
    ids, positions = canvas.ids(state), canvas.positions
    if plan.compute is not None:
        ids, positions = gather_rows(ids, plan.compute), gather_rows(positions, plan.compute)
    return model(ids, positions, plan.view, plan.logits_at)


def to_region(values: Tensor, plan: Plan, fill: Tensor) -> Tensor:
    """Scatter per-prediction values (B, N) into a (B, G) copy of `fill`."""
    return fill.scatter(1, plan.predicts, values.to(fill.dtype))


def host_sync(state: DecodeState, cache: Cache) -> Tensor:
    """state.finished (B,) to the host, with the values the cache's next plan needs in the same transfer."""
    request = cache.host_request(state)                                                # (k,) long or None
    if request is None:
        return state.finished.cpu()
    packed = torch.cat([state.finished.long(), request.long()]).cpu()
    cache.host_reply(packed[state.finished.shape[0]:].tolist())
    return packed[:state.finished.shape[0]].bool()


@torch.inference_mode()
def denoise(model: nn.Module, canvas: Canvas, state: DecodeState, parts: DecodeParts,
            on_step: StepCallback | None = None) -> DecodeState:
    """Unmask `state` until every row is finished. on_step(state, finished_cpu) runs after each step."""
    max_steps = 4 * state.gen_length + 8  # each step commits ≥ 1 per active row; this only guards remasking
    for _ in range(max_steps):
        window_index, window = parts.schedule.current(state)                           # (B,), (B, G) bool
        state.open_windows(window_index, window)
        plan = parts.cache.plan(canvas, state, window)
        logits = forward(model, canvas, state, plan)                                   # (B, N, V): one NFE
        parts.cache.count(plan, state, len(model.layers), canvas.key_mask.shape[1])
        proposed_n = parts.sampler(logits, parts.generators)                           # (B, N)
        scores_n = parts.score(logits, proposed_n, parts.generators)                   # (B, N)
        proposed = to_region(proposed_n, plan, state.tokens)                           # (B, G)
        scores = to_region(scores_n, plan, torch.full(state.tokens.shape, float("-inf"),
                                                      dtype=scores_n.dtype, device=scores_n.device))
        predicted = to_region(torch.ones_like(proposed_n, dtype=torch.bool), plan, torch.zeros_like(window))
        candidates = window & state.is_masked & predicted & ~state.finished[:, None]
        commit = parts.commit.select(scores, candidates, state)
        remask = parts.remask.select(scores, state)
        state.apply(commit, proposed, remask)
        parts.cache.update(plan, state, scores)
        state.update_finished(parts.stop_at_eos)
        finished = host_sync(state, parts.cache)                                     # the one host sync
        if on_step is not None:
            on_step(state, finished)
        if bool(finished.all()):
            return state
    raise RuntimeError(f"decoding did not finish in {max_steps} steps; a remask rule reopens too much")
