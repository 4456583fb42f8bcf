"""SlowFast sampling equals a re-implementation of the reference loop (`generate_slow_fast_sampling`, LLaDA,
batch 1, temperature 0) token for token, on the shipped tiny-arith (real confidences: spans, stability and
fast phases all happen) and on a random checkpoint; it spends exactly the reference's forwards minus those the
reference wastes on a full block; rows keep batch invariance through the per-row sub-cycle memory."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unmask
from checkpoints import reference_llada_forward, write_llada_checkpoint
from reference.samplers import before_first_eos
from reference.slowfast import slowfast_generate
from unmask import LLM, DecodeConfig
from unmask.errors import ConfigError
from unmask.models.cache_view import FullView

TINY_ARITH = Path(unmask.__file__).parent / "assets" / "tiny-arith"
QUESTIONS = ["Tom has 17 cups. He loses 5 and doubles them. How many does he have?\n",
             "Ann has 23 pens. She buys 45 more. How many pens does she have now?\n",
             "A box holds 6 rows of 7 eggs. 9 break. How many are left?\n"]


def plain_forward(llm: LLM):
    """ids (1, L) → logits (1, L, V): unmask's own model, whole sequence, no cache (tiny-arith has learned
    positions, which the independent reference forward does not cover; the model is tested elsewhere)."""
    def forward(ids):
        L = ids.shape[1]
        with torch.inference_mode():
            return llm.model(ids, torch.arange(L)[None], FullView(), torch.arange(L)[None]).float()
    return forward


@pytest.fixture(scope="module")
def arith():
    llm = LLM(str(TINY_ARITH))
    return llm, plain_forward(llm)


def ours(llm: LLM, prompts: list[list[int]], **overrides):
    cfg = DecodeConfig.preset("slowfast", stop_at_eos=False, **overrides)
    return llm.generate(prompts, cfg)


def check_against_reference(llm, fwd, prompt: list[int], gen: int, block: int, **knobs):
    names = {"sf_explore_steps": "k", "sf_span_threshold": "span_threshold", "sf_stability_window": "window",
             "sf_stability_std": "std", "threshold": "threshold"}
    x, nfe, wasted = slowfast_generate(fwd, torch.tensor([prompt]), gen, block, mask_id=llm.spec.mask_id,
                                       **{names[k]: v for k, v in knobs.items()})
    got = ours(llm, [prompt], gen_length=gen, block_length=block, **knobs)[0]
    assert got.token_ids == before_first_eos(x[:, len(prompt):], llm.spec.eos_ids)[0]
    assert got.nfe == nfe - wasted
    return got, nfe


@pytest.mark.parametrize("gen, block", [(48, 48), (48, 16)])
def test_matches_the_reference_on_tiny_arith(arith, gen, block):
    llm, fwd = arith
    fast = 0
    for q in QUESTIONS[:2]:
        got, nfe = check_against_reference(llm, fwd, llm.tokenizer.encode(q), gen, block)
        fast += got.nfe < gen
    assert fast == 2, "SlowFast commits several tokens a step on a trained model"


@pytest.mark.parametrize("knobs", [{"sf_span_threshold": 0.05, "threshold": 0.3},
                                   {"sf_explore_steps": 3, "sf_stability_window": 3, "sf_stability_std": 2.0},
                                   {"sf_explore_steps": 2, "sf_span_threshold": 0.5, "threshold": 0.6}])
def test_matches_the_reference_with_other_knobs(arith, knobs):
    llm, fwd = arith
    check_against_reference(llm, fwd, llm.tokenizer.encode(QUESTIONS[2]), 48, 48, **knobs)


def test_matches_the_reference_on_a_random_checkpoint(tmp_path):
    """Low confidences: long slow phases, spans settled by the mean, many truncated fast steps."""
    path = write_llada_checkpoint(tmp_path, seed=1)
    llm, fwd = LLM(str(path)), reference_llada_forward(path)
    for prompt in ([5, 9, 17, 4, 22, 8], [11, 3, 30]):
        check_against_reference(llm, fwd, prompt, 32, 16, sf_span_threshold=0.03, sf_explore_steps=2)
        check_against_reference(llm, fwd, prompt, 32, 32, sf_span_threshold=0.02, threshold=0.05)


def test_fast_steps_drop_the_suffix_from_the_input(tmp_path):
    """The fast phase's later forwards see only the canvas up to the span end: with the masked suffix kept in
    the input the reference gives other tokens, and unmask follows the truncated one."""
    path = write_llada_checkpoint(tmp_path, seed=1)
    llm, fwd = LLM(str(path)), reference_llada_forward(path)
    knobs = dict(span_threshold=0.1, threshold=0.9)
    differs = 0
    for prompt in ([5, 9, 17, 4, 22, 8], [11, 3, 30]):
        L = len(prompt) + 32

        def untruncated(ids):
            suffix = ids.new_full((1, L - ids.shape[1]), llm.spec.mask_id)
            return fwd(torch.cat([ids, suffix], 1))[:, :ids.shape[1]]

        x, _, _ = slowfast_generate(fwd, torch.tensor([prompt]), 32, 32, mask_id=llm.spec.mask_id, **knobs)
        y, _, _ = slowfast_generate(untruncated, torch.tensor([prompt]), 32, 32, mask_id=llm.spec.mask_id, **knobs)
        differs += not torch.equal(x, y)
        got = ours(llm, [prompt], gen_length=32, block_length=32, sf_span_threshold=0.1, threshold=0.9)[0]
        assert got.token_ids == before_first_eos(x[:, len(prompt):], llm.spec.eos_ids)[0]
    assert differs, "the truncation never mattered here: the test cannot tell"


def test_rows_are_independent_of_their_neighbours(arith):
    llm, _ = arith
    prompts = [llm.tokenizer.encode(q) for q in QUESTIONS]
    together = ours(llm, prompts, gen_length=48, block_length=16)
    for p, t in zip(prompts, together):
        alone = ours(llm, [p], gen_length=48, block_length=16)[0]
        assert (alone.token_ids, alone.nfe) == (t.token_ids, t.nfe)


def test_refuses_caches_and_impossible_windows():
    with pytest.raises(ConfigError, match="slowfast.*cache='none'"):
        DecodeConfig.preset("slowfast", cache="dual", block_length=32)
    with pytest.raises(ConfigError, match="sf_stability_window"):
        DecodeConfig.preset("slowfast", sf_explore_steps=2, sf_stability_window=3)
