"""Fast-dLLM v2 sub-block decoding against an independent re-implementation of the reference's loop
(NVlabs/Fast-dLLM v2/generation_functions.py, `batch_sample` without `use_block_cache`), on the shipped
block-causal model tiny-arith-bd (model blocks of 16), batch 1, temperature 0.

The reference, per model block: for each sub-block of `small_block_size` at fixed offsets in the block, loop
until the sub-block has no mask: forward the whole current block against the exact K/V of the finished blocks,
take the sub-block's logits, commit every masked token whose probability exceeds the threshold and always the
most probable one. Its canvas ends at a block boundary; unmask's gen_length is a multiple of the sub-block, so
for a prompt ending at a sub-block boundary the test gives unmask the gen_length that ends at a block boundary
(the reference's exact setting), and for a prompt ending inside a sub-block both end at the same place inside
the last model block (the re-implementation's last block is that block's start).

Not compared: the reference's shifted-model detail (a block's first token committed from the previous block's
last logit in the cache-writing forward): tiny-arith-bd is unshifted (logit_shift 0), like LLaDA. The
reference also runs one extra forward per finished block to write its K/V; unmask writes them inside the next
block's first step, so its NFE is the reference's decoding forwards, which is what is counted here.
"""
from __future__ import annotations

import pytest
import torch

from unmask import LLM, DecodeConfig
from unmask.bench.tasks import get_task
from unmask.cache.kv_store import attention_mask
from unmask.models.cache_view import MaskView
from unmask.models.resolve import bundled_models

pytestmark = pytest.mark.skipif("tiny-arith-bd" not in bundled_models(), reason="tiny-arith-bd asset not built")
BLOCK, THRESHOLD, BLOCKS = 16, 0.9, 3


def reference_sub_block_decode(model, spec, prompt: list[int], gen_length: int, small: int) -> tuple[list[int], int]:
    """(generated tokens, decoding forwards) of the reference's sub-block loop on one prompt."""
    mask_id, n = spec.mask_id, BLOCK
    x = torch.tensor([prompt + [mask_id] * gen_length])
    total = x.shape[1]
    nfe = 0
    for block_start in range(len(prompt) // n * n, total, n):
        end = min(block_start + n, total)       # the canvas the forward sees: finished blocks + this block
        for sub_start in range(block_start, end, small):
            sub = slice(sub_start, min(sub_start + small, end))
            while (x[0, sub] == mask_id).any():
                ids = x[:, :end]
                positions = torch.arange(end)[None, :]
                mask = attention_mask(torch.ones_like(ids, dtype=torch.bool), None, spec.attention, positions)
                logits = model(ids, positions, MaskView(mask))[0, sub]            # (small, vocab)
                nfe += 1
                probs = torch.softmax(logits.double(), -1)
                p, token = probs.max(-1)
                masked = x[0, sub] == mask_id
                p = torch.where(masked, p, torch.tensor(-torch.inf, dtype=p.dtype))
                commit = (p > THRESHOLD) & masked
                commit[p.argmax()] = True
                x[0, sub] = torch.where(commit, token, x[0, sub])
    return x[0, len(prompt):].tolist(), nfe


def before_eos(tokens: list[int], eos: tuple[int, ...]) -> list[int]:
    return next((tokens[:i] for i, t in enumerate(tokens) if t in eos), tokens)


@pytest.fixture(scope="module")
def bd():
    llm = LLM("tiny-arith-bd", device="cpu")
    task = get_task("arith")
    prompts = [llm.encode([task.prompt(e)])[0] for e in task.examples("test", 40)]
    return llm, prompts


@pytest.mark.parametrize("small", [8, 4])
@pytest.mark.parametrize("cache", ["block-causal", "none"])
def test_unmask_sub_blocks_match_the_reference_loop(bd, small, cache):
    llm, prompts = bd
    by_end = {len(p) % BLOCK: p for p in prompts}        # prompts ending at different places in a model block
    aligned = [p for end, p in sorted(by_end.items()) if end % small == 0][:2]
    ragged = [p for end, p in sorted(by_end.items()) if end % small][:2]
    assert len(aligned) == 2 and len(ragged) == 2 and any(len(p) % BLOCK for p in aligned)
    checked = 0
    for prompt in aligned + ragged:
        gen_length = -(-(BLOCKS * BLOCK - len(prompt) % BLOCK) // small) * small
        expected, expected_nfe = reference_sub_block_decode(llm.model, llm.spec, prompt, gen_length, small)
        cfg = DecodeConfig(gen_length=gen_length, block_length=small, commit="threshold", threshold=THRESHOLD,
                           alg="confidence", cache=cache, stop_at_eos=False)
        [done] = llm.generate([prompt], cfg)
        assert done.token_ids == before_eos(expected, llm.spec.eos_ids), f"prompt of {len(prompt)} tokens"
        assert done.nfe == expected_nfe, f"prompt of {len(prompt)} tokens: NFE {done.nfe} vs {expected_nfe}"
        checked += 1
    assert checked == 4


def test_sub_blocks_take_more_steps_than_whole_blocks(bd):
    """The knob does something: sub-blocks of 4 decode the same prompt in more forwards than the
    whole block of 16, and the reference loop agrees on both."""
    llm, prompts = bd
    prompt, gen_length = prompts[0], BLOCKS * BLOCK
    nfes = {}
    for small in (16, 4):
        _, nfes[small] = reference_sub_block_decode(llm.model, llm.spec, prompt, gen_length, small)
        cfg = DecodeConfig(gen_length=gen_length, block_length=small, commit="threshold", threshold=THRESHOLD,
                           cache="block-causal", stop_at_eos=False)
        assert llm.generate([prompt], cfg)[0].nfe == nfes[small]
    assert nfes[4] > nfes[16]


def test_the_fast_dllm_v2_preset_is_this_loop(bd):
    """The preset decodes sub-blocks of 8 with threshold 0.9 on the exact cache: on tiny-arith-bd (blocks of
    16) it gives the reference loop's tokens and NFE."""
    llm, prompts = bd
    prompt = next(p for p in prompts if len(p) % 8 == 0 and len(p) % BLOCK)
    gen_length = BLOCKS * BLOCK - len(prompt) % BLOCK
    cfg = DecodeConfig.preset("fast-dllm-v2", gen_length=gen_length, stop_at_eos=False)
    assert (cfg.block_length, cfg.threshold, cfg.cache) == (8, THRESHOLD, "block-causal")
    expected, expected_nfe = reference_sub_block_decode(llm.model, llm.spec, prompt, gen_length, 8)
    [done] = llm.generate([prompt], cfg)
    assert done.token_ids == before_eos(expected, llm.spec.eos_ids) and done.nfe == expected_nfe
