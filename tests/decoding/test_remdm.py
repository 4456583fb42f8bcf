"""MDLM / ReMDM (commit 'remdm' + remask 'remdm'): σ schedules against hand-computed values, η = 0 equals no
remasking, every schedule finishes through the engine, seed determinism and batch invariance, refusals."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import MASK, completions, tiny  # noqa: E402

from unmask.config import DecodeConfig  # noqa: E402
from unmask.decoding import COMMIT, REMASK, DecodeState  # noqa: E402
from unmask.decoding.remask import StepView  # noqa: E402
from unmask.decoding.remdm import remdm_rates  # noqa: E402
from unmask.engine.build import construct  # noqa: E402
from unmask.errors import ConfigError  # noqa: E402

SCHEDULES = ("cap", "rescale", "conf", "loop")


def rates(i: int, steps: int, schedule, eta: float = 0.02, **loop):
    p, sigma, last = remdm_rates(torch.tensor([i]), steps, schedule, eta, **loop)
    return p.item(), sigma.item(), bool(last.item())


@pytest.mark.parametrize("i,steps,schedule,eta,p,sigma", [
    (3, 10, None, 0.0, 0.1 / 0.7, 0.0),                       # MDLM: (α_s − α_t)/(1 − α_t), α_t .3, α_s .4
    (3, 10, "cap", 0.008, (0.4 - 0.992 * 0.3) / 0.7, 0.008),   # σ_max = min(1, .6/.3) = 1
    (8, 10, "cap", 0.5, 1.0, 0.125),                           # σ_max = .1/.8 caps η
    (8, 10, "rescale", 0.5, (0.9 - 0.9375 * 0.8) / 0.2, 0.0625),
    (8, 10, "conf", 0.0, 0.1 / 0.2, 0.125),                    # conf: masks decode as MDLM; σ = σ_max
    (0, 10, "cap", 0.02, 0.1, 0.02),                           # α_t = 0: σ_max = 1
    (9, 10, "rescale", 0.5, 1.0, 0.0),                         # last step: decode all, reopen none
])
def test_sigma_schedules_match_hand_computed_values(i, steps, schedule, eta, p, sigma):
    got_p, got_sigma, _ = rates(i, steps, schedule, eta)
    assert got_p == pytest.approx(p, abs=1e-12) and got_sigma == pytest.approx(sigma, abs=1e-12)


def test_loop_phases():
    knobs = dict(t_on=0.55, t_off=0.05, alpha_on=0.9)
    assert rates(2, 20, "loop", **knobs)[:2] == pytest.approx((0.1 / 0.8, 0.0))   # t .9: α .2 → .3 (ramp to .9)
    assert rates(10, 20, "loop", **knobs)[:2] == pytest.approx((0.02 * 0.9 / 0.1, 0.02))   # loop: α = α_on
    assert rates(38, 40, "loop", **knobs)[:2] == pytest.approx((0.05 / 0.1, 0.0))   # t .05: α .9 → .95
    assert rates(19, 20, "loop", **knobs) == (1.0, 0.0, True)


def test_conf_reopens_by_softmax_of_minus_probability():
    rule = construct(REMASK.get("remdm"), DecodeConfig(commit="remdm", remask="remdm", remdm_schedule="conf"),
                     block_length=4, steps_per_window=10)
    state = DecodeState.start(1, 4, mask_id=MASK, eos_ids=(1,), device="cpu")
    state.window_step = torch.tensor([8])
    eligible = torch.tensor([[True, True, False, False]])
    view = StepView(proposed=state.tokens, scores=torch.zeros(1, 4), predicted=torch.ones(1, 4, dtype=torch.bool),
                    window=torch.ones(1, 4, dtype=torch.bool), current_prob=torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    state.memory["remdm_conf"] = torch.tensor([[0.2, 0.9, 0.5, 0.5]])   # probabilities when decoded
    sigma = rule.sigma(view, eligible, state)[0]
    w = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-0.9))
    assert sigma.tolist() == pytest.approx([0.125 * w, 0.125 * (1 - w), 0.0, 0.0])


def test_sigma_one_reopens_every_earlier_commit_of_the_window():
    cfg = DecodeConfig(commit="remdm", remask="remdm", remdm_schedule="rescale", eta=1.0, gen_length=8, steps=4)
    rule = construct(REMASK.get("remdm"), cfg, block_length=8, steps_per_window=4,
                     generators=[torch.Generator().manual_seed(0)])
    state = DecodeState.start(1, 8, mask_id=MASK, eos_ids=(1,), device="cpu")
    state.is_masked = torch.tensor([[False, False, True, True, False, True, True, True]])
    state.window_step = torch.tensor([1])                      # α_t .25, α_s .5: σ_max = 1
    commit = torch.tensor([[False, False, True, False, False, False, False, False]])
    view = StepView(proposed=state.tokens, scores=torch.zeros(1, 8), predicted=torch.ones(1, 8, dtype=torch.bool),
                    window=torch.ones(1, 8, dtype=torch.bool))
    changes = rule.select(view, commit, state)
    assert changes.reopen.tolist() == [(~state.is_masked).tolist()[0]] and not changes.edit.any()


# ---- through the engine --------------------------------------------------------------------------------
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40]]


def decode(model, cfg: DecodeConfig, prompts=PROMPTS):
    return completions(model, prompts, cfg)


@pytest.fixture(scope="module", params=["llada", "dream"])
def model(request):
    return tiny(request.param)


@pytest.fixture(scope="module")
def llada():
    return tiny("llada")


def remdm(sigma: str | None, **over) -> DecodeConfig:
    base = dict(gen_length=16, steps=8, schedule="full", commit="remdm", temperature=1.0, seed=3, stop_at_eos=False)
    if sigma is not None:
        base.update(remask="remdm", remdm_schedule=sigma, eta=0.1)
    return DecodeConfig(**{**base, **over})


@pytest.mark.parametrize("schedule", (None,) + SCHEDULES)
@pytest.mark.parametrize("blocks", [False, True])
def test_every_schedule_finishes_and_is_seeded_and_batch_invariant(model, schedule, blocks):
    cfg = remdm(schedule, **({"schedule": "blocks", "block_length": 8} if blocks else {}))
    got = decode(model, cfg)
    assert all(c.finish_reason in ("eos", "length") and MASK not in c.token_ids for c in got)
    if schedule is not None:    # ReMDM spends every step (tokens may be reopened until the last)
        assert all(c.nfe == cfg.num_steps for c in got)
    assert all(c.nfe <= cfg.num_steps for c in got)
    again = decode(model, cfg)
    assert [(c.token_ids, c.nfe) for c in again] == [(c.token_ids, c.nfe) for c in got]
    alone = decode(model, cfg, prompts=[PROMPTS[2]])[0]
    assert (alone.token_ids, alone.nfe) == (got[2].token_ids, got[2].nfe)


@pytest.mark.parametrize("schedule", ("cap", "rescale"))   # (loop changes α itself, so it is not MDLM at η = 0)
def test_eta_zero_never_reopens_and_equals_no_remasking(llada, schedule):
    plain = decode(llada, remdm(None))
    inert = decode(llada, remdm(schedule, eta=0.0))
    assert [(c.token_ids, c.nfe) for c in inert] == [(c.token_ids, c.nfe) for c in plain]


def test_remasking_changes_the_samples(llada):
    plain = decode(llada, remdm(None, steps=16))
    remasked = decode(llada, remdm("rescale", eta=1.0, steps=16))
    assert [c.token_ids for c in remasked] != [c.token_ids for c in plain]


def test_commit_rule_draws_are_per_row():
    """Row b's draws come from generator b only: the same generator state gives the same choice in any batch."""
    cfg = DecodeConfig(commit="remdm", gen_length=16, steps=16)
    state = DecodeState.start(3, 16, mask_id=MASK, eos_ids=(1,), device="cpu")
    state.window_step = torch.tensor([2, 2, 2])
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    rule = construct(COMMIT.get("remdm"), cfg, steps_per_window=16, generators=gens)
    batched = rule.select(torch.zeros(3, 16), torch.ones(3, 16, dtype=torch.bool), state)
    alone = construct(COMMIT.get("remdm"), cfg, steps_per_window=16, generators=[torch.Generator().manual_seed(2)])
    assert torch.equal(alone.select(torch.zeros(1, 16), torch.ones(1, 16, dtype=torch.bool), state.select([1]))[0],
                       batched[1])


@pytest.mark.parametrize("over,match", [
    ({"remask": "remdm", "commit": "linear"}, "set commit='remdm'"),
    ({"commit": "remdm", "remask": "remdm", "remdm_schedule": "sometimes"}, "cap, rescale, conf, loop"),
    ({"t_on": 0.3, "t_off": 0.3}, "t_off .* must be below t_on"),
    ({"eta": 1.5}, "eta must be in"),
    ({"alpha_on": 1.0}, "alpha_on must be in"),
    ({"commit": "remdm", "remask": "remdm", "remdm_schedule": "loop", "eta": 0.2}, "exceeds 1"),
    ({"commit": "remdm", "steps": 65}, "steps ≤ 64"),
    ({"commit": "remdm", "steps": 9, "block_length": 8}, "multiple of the number of blocks"),
])
def test_refusals_name_the_reason(over, match):
    with pytest.raises(ConfigError, match=match):
        DecodeConfig(**{"gen_length": 16, **over})


@pytest.mark.parametrize("name", ["mdlm", "remdm-cap", "remdm-rescale", "remdm-conf", "remdm-loop"])
def test_presets_build(name):
    cfg = DecodeConfig.preset(name, gen_length=48, steps=12)
    assert cfg.commit == "remdm" and cfg.steps_per_window == 12 and cfg.temperature == 1.0
