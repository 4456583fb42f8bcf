"""On a block-causal model (blocks aligned with the decode blocks) block caches are exact without refreshes."""
from __future__ import annotations

import pytest
import torch

from cache_tiny import PROMPTS, run, tiny
from unmask.cache.kv_store import attention_mask
from unmask.config import DecodeConfig

# the longest prompt has 8 tokens, so decode blocks of 8 start at canvas multiples of 4 (attention blocks of 4)
EXACT = {"prefix": {}, "dual": {}, "vicinity": {"vicinity_size": 2, "vicinity_warmup_steps": 0}}


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("name", sorted(EXACT))
def test_block_cache_on_block_causal_attention_is_exact(name, arch):
    model, spec = tiny(arch, attention="block_causal:4")
    base = DecodeConfig(gen_length=24, block_length=8, stop_at_eos=False, commit="threshold", threshold=0.1)
    expected, _ = run(model, spec, base)
    got, cache = run(model, spec, base.replace(cache=name, **EXACT[name]))
    assert torch.equal(got, expected)
    assert min(cache.step_costs) < max(cache.step_costs)  # it did reuse K/V


def test_block_causal_mask_convention():
    key_mask = torch.tensor([[False, True, True, True, True, True]])
    mask = attention_mask(key_mask, None, "block_causal:2")[0, 0]        # (L, L)
    assert mask[2].tolist() == [False, True, True, True, False, False]  # canvas blocks {0,1} {2,3} {4,5}
    part = attention_mask(key_mask, torch.tensor([[4]]), "block_causal:2")[0, 0, 0]
    assert part.tolist() == [False, True, True, True, True, True]


def test_none_honours_block_causal_attention():
    model, full = tiny("llada")
    _, causal = tiny("llada", attention="block_causal:4")
    cfg = DecodeConfig(gen_length=16, block_length=8, stop_at_eos=False, steps=16)
    assert not torch.equal(run(model, full, cfg)[0], run(model, causal, cfg)[0])
