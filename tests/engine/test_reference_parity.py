"""The presets reproduce re-implementations of the official samplers token for token (temperature 0).

Oracles: tests/reference/samplers.py (LLaDA generate.py, Fast-dLLM generate, Dream diffusion_generate),
driven by tests/checkpoints.py's independent forward of random checkpoints in the official layouts.
"""
import pytest
import torch

from checkpoints import reference_dream_forward, reference_llada_forward, write_dream_checkpoint, write_llada_checkpoint
from reference import samplers
from reference.samplers import before_first_eos
from unmask import LLM, DecodeConfig

PROMPTS = torch.tensor([[5, 9, 17, 4, 22, 8], [11, 3, 30, 2, 7, 19]])


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    path = write_llada_checkpoint(tmp_path_factory.mktemp("llada"), seed=1)
    return LLM(str(path)), reference_llada_forward(path)


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    path = write_dream_checkpoint(tmp_path_factory.mktemp("dream"), seed=2)
    return LLM(str(path)), reference_dream_forward(path)


def generated(llm: LLM, cfg: DecodeConfig) -> list:
    return llm.generate(PROMPTS.tolist(), cfg.replace(stop_at_eos=False))


@pytest.mark.parametrize("steps, gen, block", [(32, 32, 8), (16, 32, 8), (32, 32, 32), (8, 32, 16)])
def test_llada_preset_matches_llada_generate(llada, steps, gen, block):
    llm, fwd = llada
    cfg = DecodeConfig.preset("llada", gen_length=gen, steps=steps, block_length=block)
    ref = samplers.llada_generate(fwd, PROMPTS, steps, gen, block, mask_id=llm.spec.mask_id)[:, PROMPTS.shape[1]:]
    assert [c.token_ids for c in generated(llm, cfg)] == before_first_eos(ref, llm.spec.eos_ids)


@pytest.mark.parametrize("rule", [{"threshold": 0.9}, {"threshold": 0.05}, {"factor": 1.0}, {"factor": 3.0}])
def test_fast_dllm_presets_match_fast_dllm_generate(llada, rule):
    llm, fwd = llada
    preset = "fast-dllm-factor" if "factor" in rule else "fast-dllm"
    # the reference is Fast-dLLM's cache-free `generate`; the preset's PrefixCache is checked in tests/cache
    cfg = DecodeConfig.preset(preset, gen_length=32, block_length=8, cache="none", **rule)
    ref, nfe = samplers.fastdllm_generate(fwd, PROMPTS, 32, 32, 8, mask_id=llm.spec.mask_id, return_nfe=True, **rule)
    ref = ref[:, PROMPTS.shape[1]:]
    mine = generated(llm, cfg)
    assert [c.token_ids for c in mine] == before_first_eos(ref, llm.spec.eos_ids)
    # the reference runs the batch in lockstep until every row's block is full: its NFE is the max over rows
    assert max(c.nfe for c in mine) == nfe


@pytest.mark.parametrize("steps, alg", [(16, "entropy"), (4, "entropy"), (16, "maskgit_plus"), (8, "topk_margin"),
                                        (32, "entropy"), (32, "maskgit_plus")])
# steps = gen_length: Dream floors some quotas to 0 and spends those forwards committing nothing; so does unmask.
def test_dream_preset_matches_dream_generate(dream, steps, alg):
    llm, fwd = dream
    cfg = DecodeConfig.preset("dream", gen_length=32, steps=steps, alg=alg)
    ref = samplers.dream_generate(fwd, PROMPTS, 32, steps, alg=alg, mask_id=llm.spec.mask_id)[:, PROMPTS.shape[1]:]
    mine = generated(llm, cfg)
    assert [c.token_ids for c in mine] == before_first_eos(ref, llm.spec.eos_ids)
    assert all(c.nfe == steps for c in mine)  # every forward is spent, also those that commit nothing
