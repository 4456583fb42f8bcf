"""SlowFast sampling (arXiv 2506.10848; LiangrunFlora/Slow-Fast-Sampling `generate_slow_fast_sampling`).

Each block is decoded in sub-cycles, each a slow phase then a fast phase. A row's sub-cycle starts at `prev`,
the block offset where the previous one ended (0 at a block's start):

* slow (explore), `sf_explore_steps` steps: each step estimates where the confident span ends, the farthest
  masked position after `prev` with confidence ≥ `sf_span_threshold`, plus one (just `prev` + 1 when none),
  clipped to the block. The last `sf_stability_window` estimates decide: population std < `sf_stability_std`
  fixes the span end at the latest estimate; otherwise it is their floored mean, fixed at the last slow step.
  Each slow step also commits, anywhere in [prev, block end).
* fast: commits inside [prev, span end) until it holds no mask. The first fast step sees the whole canvas;
  later ones drop everything after the span end from the forward's input (`prepare` hides those keys), as the
  reference runs the model on the prefix x[:, :prompt + span end] only.
* either phase commits every masked position of its scope with confidence ≥ `threshold` when more than one
  qualifies, else the single most confident one.

The sub-cycle state is per-row memory on the DecodeState, reset whenever the row's block changes. Unlike the
reference, a row whose block is full moves to the next block at once instead of spending its remaining slow
steps on forwards that cannot commit anything: the same tokens in fewer NFE.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.commit import COMMIT, CommitPolicy, best_one
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError

FIELDS = ("sf_block", "sf_prev", "sf_end", "sf_explored", "sf_fast", "sf_count", "sf_settled", "sf_estimates")
SUB_CYCLE = ("sf_explored", "sf_fast", "sf_count", "sf_settled", "sf_estimates")   # what a new sub-cycle resets


@COMMIT.register("slowfast")
class SlowFastCommit(CommitPolicy):
    needs_view = True   # for the step's window (the block), which anchors the span offsets

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.cache != "none":
            raise ConfigError(f"commit 'slowfast' drops the masked suffix after its span from the fast steps' "
                              f"input, which the caches do not plan; use cache='none' (got {cfg.cache!r})")
        if cfg.sf_stability_window > cfg.sf_explore_steps:
            raise ConfigError(f"sf_stability_window ({cfg.sf_stability_window}) cannot exceed sf_explore_steps "
                              f"({cfg.sf_explore_steps}): the span estimate would never be checked for stability")

    def __init__(self, threshold: float = 0.9, sf_explore_steps: int = 6, sf_span_threshold: float = 0.3,
                 sf_stability_window: int = 2, sf_stability_std: float = 1.0) -> None:
        self.threshold, self.explore_steps, self.span_threshold = threshold, sf_explore_steps, sf_span_threshold
        self.window, self.stability_std = sf_stability_window, sf_stability_std

    # ---- per-row sub-cycle state ----------------------------------------------------------------------------
    def memory(self, state: DecodeState) -> dict[str, Tensor]:
        """The rows' sub-cycle state, (B,) long each (zeros for rows that never ran: block 0's fresh start):
        sf_block, the block index + 1 it belongs to; sf_prev / sf_end, the span's start and end as block
        offsets; sf_explored / sf_fast, slow and fast steps taken in this sub-cycle; sf_count, span estimates
        recorded (≤ sf_stability_window); sf_settled, 1 once the span end is fixed; sf_estimates (B, window),
        the latest estimates, newest last."""
        B, dev = state.batch, state.tokens.device
        for name in FIELDS:
            if name not in state.memory:
                shape = (B, self.window) if name == "sf_estimates" else (B,)
                state.memory[name] = torch.zeros(shape, dtype=torch.long, device=dev)
        return state.memory

    def prepare(self, state: DecodeState, window: Tensor) -> Tensor:
        """Before the forward: start a new sub-cycle where the fast phase filled its span, reset rows that
        entered a new block, and return (B, G) bool, the generated positions the forward may see."""
        m = self.memory(state)
        reset(m, FIELDS, m["sf_block"] != state.window_index + 1)
        m["sf_block"] = state.window_index + 1
        rel = self.block_offsets(window)
        fast = m["sf_explored"] >= self.explore_steps
        span = (rel >= m["sf_prev"][:, None]) & (rel < m["sf_end"][:, None]) & window
        done = fast & ~(span & state.is_masked).any(-1)
        reset(m, SUB_CYCLE, done)
        m["sf_prev"] = torch.where(done, m["sf_end"], m["sf_prev"])
        truncated = (m["sf_explored"] >= self.explore_steps) & (m["sf_fast"] >= 1)
        end = first_index(window) + m["sf_end"]                                   # generated-region index
        visible = torch.arange(window.shape[1], device=window.device)[None, :] < end[:, None]
        return visible | ~truncated[:, None]

    @staticmethod
    def block_offsets(window: Tensor) -> Tensor:
        """(B, G) long: each position's offset from its row's block start (negative before it)."""
        return torch.arange(window.shape[1], device=window.device)[None, :] - first_index(window)[:, None]

    # ---- one step -----------------------------------------------------------------------------------
    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState, view=None) -> Tensor:
        m = self.memory(state)
        window = view.window if view is not None else candidates
        rel = self.block_offsets(window)
        block_len = window.sum(-1)
        exploring = m["sf_explored"] < self.explore_steps
        after_prev = rel >= m["sf_prev"][:, None]
        scope = after_prev & (exploring[:, None] | (rel < m["sf_end"][:, None]))
        self.estimate(scores, candidates & after_prev, rel, block_len, exploring, m)
        m["sf_explored"] = m["sf_explored"] + exploring.long()
        m["sf_fast"] = m["sf_fast"] + (~exploring).long()
        open_ = candidates & scope
        sure = open_ & (scores >= self.threshold)
        return torch.where((sure.sum(-1) > 1)[:, None], sure, best_one(scores, open_))

    def estimate(self, scores: Tensor, observed: Tensor, rel: Tensor, block_len: Tensor, exploring: Tensor,
                 m: dict[str, Tensor]) -> None:
        """One slow step's span-end estimate for rows still exploring and not yet settled."""
        W = self.window
        active = exploring & (m["sf_settled"] == 0)
        confident = observed & (scores >= self.span_threshold)
        farthest = torch.where(confident, rel, -1).amax(-1)                       # (B,) block offset or -1
        prev = m["sf_prev"]
        step = torch.where(farthest >= 0, farthest - prev + 1, (prev < block_len).long())
        est = (prev + step).clamp(min=1).minimum(block_len)
        history = torch.cat([m["sf_estimates"][:, 1:], est[:, None]], 1)         # (B, W) newest last
        count = (m["sf_count"] + 1).clamp(max=W)
        recorded = torch.arange(W, device=rel.device)[None, :] >= W - count[:, None]   # the last `count` slots
        n = count.double()
        mean = (history.double() * recorded).sum(-1) / n
        std = ((history.double() - mean[:, None]).pow(2) * recorded).sum(-1).div(n).sqrt()   # population std
        full = count >= W
        stable = full & (std < self.stability_std)
        last = m["sf_explored"] >= self.explore_steps - 1
        end = torch.where(stable, est, mean.floor().long().clamp(min=1).minimum(block_len))
        m["sf_end"] = torch.where(active & (full | last), end, m["sf_end"])
        m["sf_estimates"] = torch.where(active[:, None], history, m["sf_estimates"])
        m["sf_count"] = torch.where(active, count, m["sf_count"])
        m["sf_settled"] = torch.where(active & (stable | last), 1, m["sf_settled"])


def reset(m: dict[str, Tensor], names: tuple[str, ...], rows: Tensor) -> None:
    """Zero the fields `names` of memory `m` on `rows` (B,) bool."""
    for name in names:
        m[name] = torch.where(rows.view(-1, *[1] * (m[name].dim() - 1)), 0, m[name])


def first_index(window: Tensor) -> Tensor:
    """(B,) long: the first True column of each row (0 for an empty row)."""
    G = window.shape[1]
    return torch.where(window, torch.arange(G, device=window.device), G).amin(-1).clamp(max=G - 1) * window.any(-1)
