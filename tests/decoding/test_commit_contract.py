"""Contract tests over every registered commit rule, on random scores (remask rules: test_remask.py)."""
import pytest
import torch

from unmask.config import DecodeConfig
from unmask.decoding import COMMIT, DecodeState
from unmask.decoding.remask import StepView
from unmask.engine.build import construct
from unmask.models.resolve import ASSETS

SHIPPED_FILTER = ASSETS / "tiny-arith" / "learn2pd_filter.safetensors"   # Learn2PD's head (commit 'learned')

B, G = 4, 16
SETTINGS = {"linear": {}, "dream": {}, "threshold": {"threshold": 0.9}, "entropy-threshold": {"alg": "entropy"},
            "factor": {}, "eb": {"alg": "entropy"}, "hierarchy": {}, "dimple": {}, "dus": {"block_length": 8},
            "cosine": {}, "klass": {"threshold": 0.5, "kl_threshold": 1e3, "kl_history": 1}, "remdm": {},
            "slowfast": {}, "learned": {"learned_filter": str(SHIPPED_FILTER)}}
ENTROPY_SCORED = ("entropy-threshold", "eb")   # rules whose score is a negative entropy


def select(rule, scores: torch.Tensor, candidates: torch.Tensor, state: DecodeState, g: torch.Generator):
    """rule.select, with a synthetic StepView (random logits over 8 tokens) for rules that read the logits."""
    if not rule.needs_view:
        return rule.select(scores, candidates, state)
    view = StepView(proposed=state.tokens, scores=scores, predicted=torch.ones_like(candidates), window=candidates,
                    logits=torch.randn(B, G, 8, generator=g), predicts=torch.arange(G).expand(B, G))
    return rule.select(scores, candidates, state, view)


def state_with(masked: torch.Tensor) -> DecodeState:
    s = DecodeState.start(B, G, mask_id=99, eos_ids=(1,), device="cpu")
    s.is_masked = masked.clone()
    s.window_size = masked.sum(-1)
    return s


def test_every_commit_rule_has_contract_settings():
    assert set(COMMIT.names()) == set(SETTINGS), "add the new rule to SETTINGS so the contract covers it"


@pytest.mark.parametrize("name", sorted(SETTINGS))
@pytest.mark.parametrize("seed", range(5))
def test_commit_is_nonempty_subset_of_candidates(name, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = DecodeConfig(commit=name, gen_length=G, steps=G, **SETTINGS[name])
    rule = construct(COMMIT.get(name), cfg, steps_per_window=G, generators=[g] * B)
    candidates = torch.rand(B, G, generator=g) < 0.5
    candidates[0] = False          # a row with no candidate commits nothing
    candidates[1, :] = False
    candidates[1, 3] = True        # a row with exactly one candidate commits it
    scores = torch.rand(B, G, generator=g) if name not in ENTROPY_SCORED else -3 * torch.rand(B, G, generator=g)
    chosen = select(rule, scores, candidates, state_with(candidates), g)
    assert chosen.dtype == torch.bool and chosen.shape == (B, G)
    assert not (chosen & ~candidates).any()
    has = candidates.any(-1)
    if not rule.may_commit_nothing:
        assert (chosen.sum(-1)[has] >= 1).all()
        assert chosen[1, 3]


@pytest.mark.parametrize("name", sorted(SETTINGS))
@pytest.mark.parametrize("seed", range(3))
def test_commit_empties_a_window_within_its_step_budget(name, seed):
    """Every rule, also one allowed to commit nothing on some steps, fills a window in ≤ its steps per window
    (quota rules) or ≤ the window length (adaptive rules), on fresh random scores each step."""
    g = torch.Generator().manual_seed(seed)
    cfg = DecodeConfig(commit=name, gen_length=G, steps=G, **SETTINGS[name])
    rule = construct(COMMIT.get(name), cfg, steps_per_window=cfg.steps_per_window, block_length=cfg.window_length,
                     generators=[g] * B)
    window = torch.arange(G)[None, :] // cfg.window_length == 0
    s = state_with(window.expand(B, G) & True)
    for step in range(cfg.window_length):
        s.window_step = torch.full((B,), step)
        candidates = s.is_masked & window
        if not candidates.any():
            break
        scores = torch.rand(B, G, generator=g)
        scores = -3 * scores if name in ENTROPY_SCORED else scores
        s.is_masked = s.is_masked & ~select(rule, scores, candidates, s, g)
    else:
        step = cfg.window_length
    assert not (s.is_masked & window).any(), f"{name} left masks after {step} steps"
    assert step <= (cfg.steps_per_window if name in ("linear", "dream", "dimple", "cosine", "klass", "remdm")
                    else cfg.window_length)


def test_threshold_above_one_commits_exactly_one_per_step():
    rule = COMMIT.get("threshold")(threshold=1.0 + 1e-6)
    scores = torch.rand(B, G).clamp(max=1.0)
    candidates = torch.ones(B, G, dtype=torch.bool)
    chosen = rule.select(scores, candidates, state_with(candidates))
    assert (chosen.sum(-1) == 1).all()
    assert (chosen.float().argmax(-1) == scores.argmax(-1)).all()


def test_threshold_takes_all_confident():
    rule = COMMIT.get("threshold")(threshold=0.5)
    scores = torch.tensor([[0.9, 0.6, 0.4, 0.1]])
    chosen = rule.select(scores, torch.ones(1, 4, dtype=torch.bool), None)
    assert chosen.tolist() == [[True, True, False, False]]


def test_factor_rule_matches_hand_computation():
    # sorted c = .99, .9, .5: rank 2 needs c >= 1 - 1/3 -> .9 ok; rank 3 needs >= .75 -> .5 fails at the last rank,
    # which (as in Fast-dLLM) accepts every candidate
    rule = COMMIT.get("factor")(factor=1.0)
    chosen = rule.select(torch.tensor([[0.5, 0.99, 0.9]]), torch.ones(1, 3, dtype=torch.bool), None)
    assert chosen.tolist() == [[True, True, True]]
    # c = .99, .5, .4, .3: rank 2 fails (not last) -> only the best
    chosen = rule.select(torch.tensor([[0.99, 0.5, 0.4, 0.3]]), torch.ones(1, 4, dtype=torch.bool), None)
    assert chosen.tolist() == [[True, False, False, False]]


def test_linear_quota_spreads_block_over_steps():
    rule = COMMIT.get("linear")(steps_per_window=3)
    candidates = torch.ones(1, 8, dtype=torch.bool)
    s = DecodeState.start(1, 8, mask_id=99, eos_ids=(1,), device="cpu")
    s.window_size = torch.tensor([8])
    counts = []
    for step in range(3):
        s.window_step = torch.tensor([step])
        counts.append(int(rule.select(torch.rand(1, 8), candidates, s).sum()))
    assert counts == [3, 3, 2]
