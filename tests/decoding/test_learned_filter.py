"""Learn2PD's learned commit filter: its features by hand, its head's file format, and what the rule commits."""
import math

import pytest
import torch

from unmask.decoding import COMMIT, DecodeState
from unmask.decoding.filter_features import FEATURES, step_features, token_stats
from unmask.decoding.filter_head import FILTER_CONFIG, FILTER_FILE, FilterHead, load_filter
from unmask.decoding.learned_filter import LearnedCommit
from unmask.decoding.remask import StepView
from unmask.errors import CheckpointError, ConfigError


def test_token_stats_match_a_hand_computation():
    p = torch.tensor([0.7, 0.2, 0.1])
    stats = token_stats(p.log()[None, None], eos_ids=(0,))[0, 0]
    entropy = -(p * p.log()).sum().item() / math.log(3)
    assert stats.tolist() == pytest.approx([0.7, 0.5, entropy, math.log(0.7 / 0.3) / 12, 1.0], abs=1e-6)
    assert token_stats(p.log()[None, None], eos_ids=(2,))[0, 0, 4] == 0


def test_step_features_by_hand():
    # one row, G = 4, window = positions 1..3; position 1 committed, 2 and 3 masked, 0 masked outside the window
    stats = torch.zeros(1, 4, 5, dtype=torch.float64)
    stats[0, :, 0] = torch.tensor([0.5, 0.9, 0.6, 0.8])
    is_masked = torch.tensor([[True, False, True, True]])
    window = torch.tensor([[False, True, True, True]])
    tokens = torch.tensor([[3, 130, 7, 5]])
    f = step_features(stats, torch.ones_like(is_masked), is_masked, window, torch.tensor([3]), tokens)[0]
    col = {name: i for i, name in enumerate(FEATURES)}
    assert f[:, col["offset"]].tolist() == pytest.approx([-1 / 3, 0, 1 / 3, 2 / 3])
    assert f[:, col["from_frontier"]].tolist() == pytest.approx([-2 / 3, -1 / 3, 0, 1 / 3])   # frontier = 2
    assert f[:, col["masked_frac"]].tolist() == pytest.approx([2 / 3] * 4)
    assert f[:, col["step"]].tolist() == pytest.approx([3 / 16] * 4)
    assert f[:, col["left_conf"]].tolist() == pytest.approx([1.0, 0.5, 1.0, 0.6])   # committed neighbour = 1
    assert f[:, col["right_conf"]].tolist() == pytest.approx([1.0, 0.6, 0.8, 1.0])
    assert f[:, col["left_done"]].tolist() == [1, 0, 1, 0]
    assert f[:, col["right_done"]].tolist() == [1, 0, 0, 1]
    assert f[:, col["masked_left"]].tolist() == pytest.approx([0, 0, 0, 1 / 3])       # open: 2 and 3 only
    assert f[:, col["min_left_conf"]].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.6])
    assert f[:, col["token_bucket"]].tolist() == [3, 2, 7, 5]                         # id mod 128


def test_a_position_the_forward_did_not_predict_has_zero_stats():
    stats = torch.ones(1, 3, 5, dtype=torch.float64)
    predicted = torch.tensor([[True, False, True]])
    f = step_features(stats, predicted, torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool),
                      torch.tensor([0]), torch.full((1, 3), 9))
    assert f[0, 1, :5].tolist() == [0] * 5 and f[0, :, -1].tolist() == [9, 0, 9] and f[0, 0, FEATURES.index("right_conf")] == 0


def confidence_head(scale: float = 40.0, at: float = 0.8) -> FilterHead:
    """A head whose probability is sigmoid(scale · (p1 − at)) (GELU is the identity on the large positive
    pre-activation): it calls a position final exactly when its top-1 probability is above `at`."""
    head = FilterHead()
    with torch.no_grad():
        for layer in (head.net[0], head.net[2], head.net[4]):
            layer.weight.zero_()
            layer.bias.zero_()
        head.net[0].weight[0, 0] = 1.0
        head.net[0].bias[0] = 100.0                      # h = p1 + 100 > 0 → GELU(h) = h
        head.net[2].weight[0, 0] = 1.0                   # h' = p1 + 100
        head.net[4].weight[0, 0] = scale
        head.net[4].bias[0] = -scale * (100.0 + at)
    return head


def view_for(probs: torch.Tensor) -> StepView:
    B, G, V = probs.shape
    return StepView(proposed=probs.argmax(-1), scores=probs.amax(-1), predicted=torch.ones(B, G, dtype=torch.bool),
                    window=torch.ones(B, G, dtype=torch.bool), logits=probs.log(), predicts=torch.arange(G).expand(B, G))


def probs_with_top(top: list[float], V: int = 6) -> torch.Tensor:
    rest = [(1 - t) / (V - 1) for t in top]
    p = torch.tensor([[r] * V for r in rest])
    p[torch.arange(len(top)), 2] = torch.tensor(top)
    return p[None]


def test_learned_rule_commits_what_the_filter_calls_final_and_always_one():
    rule = LearnedCommit(confidence_head(at=0.8), filter_threshold=0.5)
    probs = probs_with_top([0.95, 0.5, 0.85, 0.3])
    state = DecodeState.start(1, 4, mask_id=5, eos_ids=(0,), device="cpu")
    candidates = torch.ones(1, 4, dtype=torch.bool)
    assert rule.select(None, candidates, state, view_for(probs)).tolist() == [[True, False, True, False]]
    low = probs_with_top([0.3, 0.5, 0.4, 0.2])          # nobody final: the surest one still commits
    assert rule.select(None, candidates, state, view_for(low)).tolist() == [[False, True, False, False]]
    only = torch.tensor([[False, False, False, True]])
    assert rule.select(None, only, state, view_for(probs)).tolist() == [[False, False, False, True]]


def test_filter_files_round_trip_and_bad_files_are_named(tmp_path):
    head = confidence_head()
    head.save(tmp_path, {"note": "test"})
    loaded = load_filter(tmp_path)
    x = torch.rand(7, len(FEATURES), dtype=torch.float64)
    assert torch.equal(loaded.probability(x), head.probability(x))
    assert load_filter(tmp_path / FILTER_FILE).hidden == head.hidden
    with pytest.raises(CheckpointError, match="no Learn2PD filter"):
        load_filter(tmp_path / "missing")
    (tmp_path / FILTER_CONFIG).write_text('{"features": ["p1"], "hidden": 32}')
    with pytest.raises(CheckpointError, match="features"):
        load_filter(tmp_path)
    (tmp_path / FILTER_CONFIG).write_text('[1, 2]')
    with pytest.raises(CheckpointError, match="JSON object"):
        load_filter(tmp_path)
    (tmp_path / FILTER_CONFIG).write_text('{"validation": {"recommended_threshold": 0.7}}')
    assert load_filter(tmp_path).recommended_threshold == 0.7 and LearnedCommit(load_filter(tmp_path)).threshold == 0.7
    (tmp_path / FILTER_CONFIG).write_text('{"hidden": 8}')
    with pytest.raises(CheckpointError, match="does not match"):
        load_filter(tmp_path)
    (tmp_path / FILTER_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_filter(tmp_path)


def test_learned_rule_without_a_filter_or_with_sampling_is_refused():
    with pytest.raises(ConfigError, match="train-filter"):
        LearnedCommit(None)
    from unmask.config import DecodeConfig
    with pytest.raises(ConfigError, match="temperature"):
        DecodeConfig(commit="learned", temperature=1.0)
    assert COMMIT.get("learned") is LearnedCommit


def test_previous_forward_and_rank_features_by_hand():
    # one row, G = 4, all in the window; position 1 committed. The previous forward predicted 0..2 (3 unknown)
    stats = torch.zeros(1, 4, 5, dtype=torch.float64)
    stats[0, :, 0] = torch.tensor([0.5, 0.9, 0.7, 0.6])
    is_masked = torch.tensor([[True, False, True, True]])
    window = torch.ones(1, 4, dtype=torch.bool)
    tokens = torch.tensor([[3, 4, 7, 5]])
    previous = (torch.tensor([[3, 4, 6, -1]]), torch.tensor([[0.4, 0.8, 0.3, 0.9]], dtype=torch.float64))
    f = step_features(stats, torch.ones_like(is_masked), is_masked, window, torch.tensor([1]), tokens, previous)[0]
    col = {name: i for i, name in enumerate(FEATURES)}
    assert f[:, col["prev_known"]].tolist() == [1, 1, 1, 0]
    assert f[:, col["prev_same"]].tolist() == [1, 1, 0, 0]                           # 2 changed 6 → 7
    assert f[:, col["prev_p1"]].tolist() == pytest.approx([0.4, 0.8, 0.3, 0])
    assert f[:, col["conf_rank"]].tolist() == pytest.approx([2 / 4, 0, 0, 1 / 4])   # open: 0.5, 0.7, 0.6
    first = step_features(stats, torch.ones_like(is_masked), is_masked, window, torch.tensor([0]), tokens)[0]
    assert first[:, [col["prev_known"], col["prev_same"], col["prev_p1"]]].abs().sum() == 0   # no previous forward


def stability_head(at: float = 0.5) -> FilterHead:
    """A head over (prev_same, token_bucket) that calls a position final exactly when its argmax is unchanged."""
    head = FilterHead(("prev_same", "token_bucket"))
    with torch.no_grad():
        for layer in (head.net[0], head.net[2], head.net[4]):
            layer.weight.zero_()
            layer.bias.zero_()
        head.net[0].weight[0, 0], head.net[0].bias[0] = 1.0, 100.0
        head.net[2].weight[0, 0] = 1.0
        head.net[4].weight[0, 0], head.net[4].bias[0] = 40.0, -40.0 * (100.0 + at)
    return head


def test_the_rule_remembers_each_rows_previous_argmax_across_steps():
    rule = LearnedCommit(stability_head(), filter_threshold=0.5)
    state = DecodeState.start(1, 4, mask_id=5, eos_ids=(0,), device="cpu")
    candidates = torch.ones(1, 4, dtype=torch.bool)
    first = probs_with_top([0.6, 0.7, 0.8, 0.9])                          # argmax 2 everywhere
    assert rule.select(None, candidates, state, view_for(first)).sum() == 1   # nothing known yet: the surest one
    second = first.clone()
    second[0, 1] = second[0, 1].flip(-1)                                  # position 1's argmax moves to 3
    assert rule.select(None, candidates, state, view_for(second)).tolist() == [[True, False, True, True]]
    joined = DecodeState.cat(state, DecodeState.start(1, 4, mask_id=5, eos_ids=(0,), device="cpu"))
    both = torch.cat([second, second])
    chosen = rule.select(None, candidates.expand(2, 4), joined, view_for(both))
    assert chosen[0].tolist() == [True, True, True, True] and chosen[1].sum() == 1   # the new row knows nothing


def test_a_filter_reads_the_features_its_json_lists_and_bad_lists_are_refused(tmp_path):
    head = stability_head()
    head.save(tmp_path)
    loaded = load_filter(tmp_path)
    assert loaded.features == ("prev_same", "token_bucket")
    x = torch.rand(5, len(FEATURES), dtype=torch.float64)
    assert torch.equal(loaded.probability(x), head.probability(x))
    for bad in ('["p1", "nope", "token_bucket"]', '["token_bucket", "p1"]', '["p1", "p1", "token_bucket"]', '"p1"'):
        (tmp_path / FILTER_CONFIG).write_text('{"features": %s}' % bad)
        with pytest.raises(CheckpointError, match="features"):
            load_filter(tmp_path)
