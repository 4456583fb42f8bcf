"""The commit rules of unmask/decoding/commit_adaptive.py (eb, hierarchy, dimple, dus, cosine), Dream's zero-quota
steps and LLaDA's EOS options, on synthetic scores and a toy logits function (no model, fast)."""
from __future__ import annotations

import math

import pytest
import torch

from tests.reference import samplers as S
from unmask.config import DecodeConfig
from unmask.decoding import COMMIT, DecodeState, TokenSampler
from unmask.decoding.commit_adaptive import dilated_levels
from unmask.decoding.scores import NegativeEntropy, TopProbability
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec

MASK, VOCAB = 31, 32


def state(B: int, G: int, window_step: int = 0, window_size: int | None = None) -> DecodeState:
    s = DecodeState.start(B, G, mask_id=MASK, eos_ids=(1,), device="cpu")
    s.window_step = torch.full((B,), window_step)
    s.window_size = torch.full((B,), G if window_size is None else window_size)
    return s


def rule(name: str, **knobs):
    cfg = DecodeConfig(commit=name, **knobs)
    from unmask.engine.build import construct  # read-only use of the engine's constructor
    return construct(COMMIT.get(name), cfg, steps_per_window=cfg.steps_per_window, block_length=cfg.window_length,
                     generators=[torch.Generator().manual_seed(0)] * 4)


# ---- EB-Sampler ---------------------------------------------------------------------------------------------
def test_eb_accepts_prefix_by_entropy_bound():
    eb = rule("eb", alg="entropy", eb_gamma=0.5)
    # entropies .1 .2 .3 .05 1.0 -> sorted .05 .1 .2 .3 1.0; Σ earlier: 0 .05 .15 .35 .65 -> first four pass
    scores = -torch.tensor([[0.1, 0.2, 0.3, 0.05, 1.0]])
    chosen = eb.select(scores, torch.ones(1, 5, dtype=torch.bool), state(1, 5))
    assert chosen.tolist() == [[True, True, True, True, False]]


def test_eb_accepts_more_when_entropies_are_low_and_at_least_one():
    eb = rule("eb", alg="entropy")  # gamma 0.15
    cand = torch.ones(2, 8, dtype=torch.bool)
    scores = torch.stack([-torch.full((8,), 0.01), -torch.full((8,), 2.0)])
    counts = eb.select(scores, cand, state(2, 8)).sum(-1).tolist()
    assert counts == [8, 1]
    cand[1, :5] = False  # non-candidates are ignored even if they are the most certain
    scores[1, :5] = 0.0
    chosen = eb.select(scores, cand, state(2, 8))
    assert chosen[1].sum() == 1 and not chosen[1, :5].any()


def test_eb_needs_entropy():
    with pytest.raises(ConfigError, match="needs alg='entropy'"):
        DecodeConfig(commit="eb", alg="confidence")
    with pytest.raises(ConfigError, match="eb_gamma must be"):
        DecodeConfig(commit="eb", alg="entropy", eb_gamma=-0.1)


# ---- dInfer hierarchical ------------------------------------------------------------------------------------
def test_hierarchy_picks_one_per_run_above_low_threshold():
    h = rule("hierarchy", threshold=0.9, low_threshold=0.4)
    cand = torch.tensor([[1, 1, 1, 0, 1, 1, 0, 1, 1, 1]], dtype=torch.bool)
    scores = torch.tensor([[0.5, 0.7, 0.6, 0.99, 0.3, 0.35, 0.99, 0.45, 0.45, 0.95]])
    chosen = h.select(scores, cand, state(1, 10))
    # run 1: best .7 (pos 1); run 2: best .35 ≤ .4 -> none; run 3: .95 (pos 9, also ≥ .9); non-candidates never
    assert chosen.nonzero()[:, 1].tolist() == [1, 9]
    scores[0, 9] = 0.42  # run 3 now ties .45/.45 -> the first one; nothing ≥ .9 -> the row's best is still in
    chosen = h.select(scores, cand, state(1, 10))
    assert chosen.nonzero()[:, 1].tolist() == [1, 7]


def test_hierarchy_is_per_row_and_keeps_the_best_one():
    h = rule("hierarchy")
    g = torch.Generator().manual_seed(3)
    cand = torch.rand(5, 24, generator=g) < 0.6
    cand[4] = False
    scores = torch.rand(5, 24, generator=g) * 0.5  # all below low_threshold 0.4 or just above
    batched = h.select(scores, cand, state(5, 24))
    alone = torch.cat([h.select(scores[r:r + 1], cand[r:r + 1], state(1, 24)) for r in range(5)])
    assert torch.equal(batched, alone)
    assert not (batched & ~cand).any() and (batched.sum(-1)[:4] >= 1).all() and batched[4].sum() == 0


# ---- Dimple -------------------------------------------------------------------------------------------------
def test_dimple_commits_confident_only_else_dream_quota():
    d = rule("dimple", gen_length=16, steps=16, threshold=0.9)
    cand = torch.ones(2, 16, dtype=torch.bool)
    scores = torch.rand(2, 16) * 0.8
    scores[0, [3, 7]] = 0.95
    chosen = d.select(scores, cand, state(2, 16, window_step=2))
    assert chosen[0].nonzero().flatten().tolist() == [3, 7]  # exactly the confident ones, no forced argmax
    dream = rule("dream", gen_length=16, steps=16, alg="confidence")
    quota = dream.quota(cand, state(2, 16, window_step=2))
    assert int(chosen[1].sum()) == max(1, int(quota[1]))  # Dream's quota, floored 0 -> at least one
    assert chosen[1, scores[1].argmax()]
    last = d.select(scores, cand, state(2, 16, window_step=15))
    assert last.all()  # the window's last step commits everything left, as Dream's


# ---- DUS ----------------------------------------------------------------------------------------------------
def test_dus_levels_are_dilated_and_logarithmic():
    levels = dilated_levels(32)
    groups = [[p for p in range(32) if levels[p] == k] for k in range(max(levels) + 1)]
    assert groups[:3] == [[0, 16], [8, 24], [4, 12, 20, 28]]
    assert [len(g) for g in groups] == [2, 2, 4, 8, 16]
    for L in (8, 16, 32, 64, 128):
        assert max(dilated_levels(L)) + 1 == int(math.log2(L))  # the last two strides merge (2 and 1)


def test_dus_commits_scheduled_positions_regardless_of_scores():
    dus = rule("dus", gen_length=32, block_length=16)
    cand = torch.ones(1, 32, dtype=torch.bool)
    cand[:, 16:] = False  # the current window is block 0
    scores = torch.rand(1, 32)
    committed = []
    for step in range(4):
        chosen = dus.select(scores, cand, state(1, 32, window_step=step))
        committed.append(chosen.nonzero()[:, 1].tolist())
        cand &= ~chosen
    assert committed[0] == [0, 8] and committed[1] == [4, 12] and len(committed[3]) == 8 and not cand.any()


def test_dus_refuses_base_one():
    with pytest.raises(ConfigError, match="dus_base"):
        DecodeConfig(commit="dus", dus_base=1)


# ---- cosine -------------------------------------------------------------------------------------------------
def test_cosine_quota_follows_maskgit_schedule():
    cos = rule("cosine", gen_length=32, steps=8, block_length=32)
    counts, cand = [], torch.ones(1, 32, dtype=torch.bool)
    for i in range(8):
        chosen = cos.select(torch.rand(1, 32), cand, state(1, 32, window_step=i, window_size=32))
        counts.append(int(chosen.sum()))
        cand &= ~chosen
        assert int(cand.sum()) == math.floor(32 * math.cos(math.pi / 2 * (i + 1) / 8) + 1e-9) or i == 7
    assert sum(counts) == 32 and not cand.any()
    assert counts == sorted(counts)  # few first, many last


# ---- Dream: zero-quota steps reproduce diffusion_generate ---------------------------------------------------
def toy_model(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    emb, pos, out = torch.randn(VOCAB, 16, generator=g), torch.randn(64, 16, generator=g), torch.randn(16, VOCAB, generator=g)
    bias = torch.zeros(VOCAB)
    bias[MASK] = -1e4

    def fn(x: torch.Tensor) -> torch.Tensor:
        h = emb[x] + pos[: x.shape[1]]
        return torch.tanh(h + h.mean(dim=1, keepdim=True)) @ out * 2.0 + bias

    return fn


def unmask_loop(fn, prompt, gen, name, shift, score, sampler, **knobs):
    """The engine's step on a whole-canvas forward: sample, score, commit (the current window), fill."""
    cfg = DecodeConfig(commit=name, gen_length=gen, **knobs)
    commit = rule(name, gen_length=gen, **knobs)
    B, P = prompt.shape
    x = torch.cat([prompt, torch.full((B, gen), MASK)], 1)
    s = state(B, gen)
    per_step, history = [], []
    for step in range(cfg.num_steps):
        logits = fn(x)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], 1) if shift else logits
        logits = logits[:, P:]
        proposed = sampler(logits, [])
        scores = score(logits, proposed, [])
        block = step // cfg.steps_per_window
        window = (torch.arange(gen) // cfg.window_length == block)[None, :]
        s.window_step = torch.full((B,), step % cfg.steps_per_window)
        s.window_size = (window & (x[:, P:] == MASK)).sum(-1) if step % cfg.steps_per_window == 0 else s.window_size
        chosen = commit.select(scores, window & (x[:, P:] == MASK), s)
        per_step.append(chosen.sum(-1))
        x[:, P:] = torch.where(chosen, proposed, x[:, P:])
        history.append(x.clone())
    return x, torch.stack(per_step), history


def test_dream_with_steps_equal_gen_length_matches_reference_including_empty_steps():
    fn, prompt, gen = toy_model(), torch.randint(0, MASK, (2, 5), generator=torch.Generator().manual_seed(1)), 24
    ref_history = []
    ref = S.dream_generate(fn, prompt, gen, gen, alg="entropy", mask_id=MASK, history=ref_history)
    mine, per_step, history = unmask_loop(fn, prompt, gen, "dream", True, NegativeEntropy(), TokenSampler(banned=(MASK,)),
                                 steps=gen, schedule="full", alg="entropy")
    assert torch.equal(mine, ref)
    assert all(torch.equal(a, b) for a, b in zip(history, ref_history, strict=True))  # step by step
    assert (per_step == 0).any() and per_step.sum(0).tolist() == [gen, gen]  # some forwards commit nothing


# ---- LLaDA logits_eos_inf / confidence_eos_eot_inf ----------------------------------------------------------
EOS, EOT = 3, 4
SPEC = DiffusionSpec(mask_id=MASK, eos_ids=(EOS, EOT))


def test_eos_options_validate_and_ban():
    cfg = DecodeConfig(logits_eos_inf=True)
    assert TokenSampler.from_config(cfg, SPEC).banned == [MASK, EOS]
    assert TokenSampler.from_config(DecodeConfig(), SPEC).banned == [MASK]
    with pytest.raises(ConfigError, match="wrong type"):
        DecodeConfig(confidence_eos_eot_inf=1)


@pytest.mark.parametrize("eos_inf, eot_inf", [(True, False), (False, True), (True, True)])
def test_llada_eos_options_match_generate(eos_inf, eot_inf):
    def fn(x):  # the toy model with EOS/EoT made likely, so the options matter
        logits = toy_model(2)(x)
        logits[..., EOS] += 3.0
        logits[..., EOT] += 2.5
        return logits

    prompt, gen = torch.randint(5, MASK, (2, 4), generator=torch.Generator().manual_seed(4)), 16
    ref = S.llada_generate(fn, prompt, 16, gen, 8, mask_id=MASK, logits_eos_inf=eos_inf,
                           confidence_eos_eot_inf=eot_inf, eos_id=EOS, eot_id=EOT)
    cfg = DecodeConfig(logits_eos_inf=eos_inf, confidence_eos_eot_inf=eot_inf)
    sampler = TokenSampler.from_config(cfg, SPEC)
    sampler.banned = [EOS] if eos_inf else []  # LLaDA's generate never bans the mask id
    score = TopProbability(spec=SPEC, logits_eos_inf=eos_inf, confidence_eos_eot_inf=eot_inf)
    mine, _, _ = unmask_loop(fn, prompt, gen, "linear", False, score, sampler, steps=16, block_length=8)
    assert torch.equal(mine, ref)
    plain, _, _ = unmask_loop(fn, prompt, gen, "linear", False, TopProbability(), TokenSampler(), steps=16, block_length=8)
    assert not torch.equal(plain, mine)  # the options changed the trajectory
