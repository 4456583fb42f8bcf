"""Classifier-free guidance equals LLaDA's formula (the re-implementation of its generate.py, cfg_scale > 0)
token for token, counts one NFE and two model rows per step, and keeps batch invariance."""
import pytest
import torch

from checkpoints import reference_llada_forward, write_llada_checkpoint
from reference import samplers
from reference.samplers import before_first_eos
from unmask import LLM, DecodeConfig

PROMPTS = torch.tensor([[5, 9, 17, 4, 22, 8], [11, 3, 30, 2, 7, 19]])


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    path = write_llada_checkpoint(tmp_path_factory.mktemp("llada"), seed=1)
    return LLM(str(path)), reference_llada_forward(path)


@pytest.mark.parametrize("scale, steps, block", [(1.0, 16, 8), (0.5, 32, 32), (3.0, 8, 16)])
def test_cfg_matches_llada_generate(llada, scale, steps, block):
    llm, fwd = llada
    cfg = DecodeConfig.preset("llada", gen_length=32, steps=steps, block_length=block, cfg_scale=scale,
                              stop_at_eos=False)
    ref = samplers.llada_generate(fwd, PROMPTS, steps, 32, block, mask_id=llm.spec.mask_id,
                                  cfg_scale=scale)[:, PROMPTS.shape[1]:]
    mine = llm.generate(PROMPTS.tolist(), cfg)
    assert [c.token_ids for c in mine] == before_first_eos(ref, llm.spec.eos_ids)
    plain = llm.generate(PROMPTS.tolist(), cfg.replace(cfg_scale=0.0))
    assert [c.token_ids for c in mine] != [c.token_ids for c in plain], "guidance changes the tokens"
    assert all(c.nfe == steps and c.model_rows == 2 * steps for c in mine)
    assert all(c.model_rows == c.nfe for c in plain)


def test_cfg_rows_are_independent_of_their_neighbours(llada):
    llm, _ = llada
    cfg = DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=8, cfg_scale=1.0)
    prompts = [[5, 9, 17, 4, 22, 8], [11, 3], [30, 2, 7, 19, 6, 6, 6, 6, 6]]
    together = llm.generate(prompts, cfg)
    for p, t in zip(prompts, together):
        assert llm.generate([p], cfg)[0].token_ids == t.token_ids


def test_cfg_with_a_cache_counts_both_rows(llada):
    """With a cache the step cost of a row is that of its two forward rows (each computes the same positions)."""
    llm, _ = llada
    cfg = DecodeConfig.preset("fast-dllm", gen_length=32, block_length=8, stop_at_eos=False)
    plain, guided = llm.generate(PROMPTS.tolist(), cfg), llm.generate(PROMPTS.tolist(), cfg.replace(cfg_scale=1.0))
    for p, g in zip(plain, guided):
        assert g.model_rows == 2 * g.nfe and p.model_rows == p.nfe
        per_forward = g.computed / g.model_rows
        assert per_forward <= p.computed / p.nfe * 1.5, "a cached guided forward costs about a cached plain one"
