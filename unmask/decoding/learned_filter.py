"""Learn2PD (arXiv 2509.25188): a learned commit filter, `commit="learned"`.

A tiny MLP (decoding/filter_head.py) reads, for every masked position of a row's current window, features the
decode loop already has (decoding/filter_features.py: its top-1 probability, margin, entropy, where it sits in
the window, how far the window has got, its neighbours' confidences, whether its argmax changed since the
row's previous forward, which the rule keeps in the decode state) and predicts whether the position's
current argmax already equals the token it will finally get. Positions the filter calls final (probability ≥
`filter_threshold`) are committed, and always the one it is surest of. The head is trained post hoc on the
teacher's own decoding trajectories (`unmask train-filter`, unmask/train/filter.py) and ships beside the model.
The MLP runs in float64.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from unmask.decoding.commit import COMMIT, CommitPolicy, best_one
from unmask.decoding.filter_features import step_features, token_stats
from unmask.decoding.filter_head import FILTER_FILE, FilterHead, load_filter
from unmask.decoding.state import DecodeState
from unmask.errors import ConfigError

PREV_TOKENS, PREV_P1 = "learn2pd_argmax", "learn2pd_p1"   # state.memory keys: the row's previous forward


@COMMIT.register("learned")
class LearnedCommit(CommitPolicy):
    """Commit every candidate the filter calls final (probability ≥ filter_threshold), always its surest one.
    filter_threshold None: the threshold the filter's own training validated (its JSON), else 0.5."""

    needs_view = True

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.temperature > 0:
            raise ConfigError("commit 'learned' was trained on greedy trajectories: its labels say whether the "
                              "argmax is final; use temperature=0")

    def __init__(self, learned_filter: FilterHead | str | Path | None, filter_threshold: float | None = None) -> None:
        if learned_filter is None:
            raise ConfigError("commit 'learned' needs a Learn2PD filter: this model ships none "
                              f"({FILTER_FILE}); train one with `unmask train-filter` or set learned_filter")
        self.head = learned_filter if isinstance(learned_filter, FilterHead) else load_filter(learned_filter)
        fallback = self.head.recommended_threshold if self.head.recommended_threshold is not None else 0.5
        self.threshold = filter_threshold if filter_threshold is not None else fallback

    def final_probability(self, state: DecodeState, view) -> Tensor:
        """(B, G) float64: the filter's probability that each position's argmax is final (0 where not predicted).
        Keeps each row's argmax and top-1 probability in `state.memory` for the next step's `prev_*` features
        (argmax + 1, so the zeros of a row that joins later read as unknown)."""
        stats_n = token_stats(view.logits, state.eos_ids)                                   # (B, N, 5)
        B, G = state.tokens.shape
        stats = stats_n.new_zeros(B, G, stats_n.shape[-1]).scatter(
            1, view.predicts[..., None].expand(-1, -1, stats_n.shape[-1]), stats_n)
        predicted = torch.zeros(B, G, dtype=torch.bool, device=stats.device).scatter(1, view.predicts, True)
        tokens = state.tokens.scatter(1, view.predicts, view.logits.argmax(-1))
        seen = state.memory.get(PREV_TOKENS)
        previous = None if seen is None else (seen - 1, state.memory[PREV_P1])
        features = step_features(stats, predicted, state.is_masked, view.window, state.window_step, tokens, previous)
        state.memory[PREV_TOKENS] = torch.where(predicted, tokens + 1, 0)
        state.memory[PREV_P1] = torch.where(predicted, stats[..., 0], 0.0)
        return torch.where(predicted, self.head.probability(features), 0.0)

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState, view=None) -> Tensor:
        p = self.final_probability(state, view)
        return ((p >= self.threshold) & candidates) | best_one(p, candidates)
