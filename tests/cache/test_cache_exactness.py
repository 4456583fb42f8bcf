"""Every registered cache, configured to refresh everything every step, gives the tokens of `none`."""
from __future__ import annotations

import pytest
import torch

from cache_tiny import PROMPTS, run, tiny
from unmask.cache import CACHES
from unmask.config import DecodeConfig

# DecodeConfig overrides that make each cache recompute every K/V every step. A newly registered cache must add
# its entry here (the test below fails until it does).
REFRESH_EVERY_STEP: dict[str, dict] = {
    "none": {},
    "prefix": {"cache_update_freq": 1},
    "dual": {"cache_update_freq": 1},
    "vicinity": {"cache_update_freq": 1},
    "delayed": {"cache_reloading_step": 1},
    "feature": {"prompt_interval": 1, "response_interval": 1},
    "d2": {"d2_current_k": 1 << 20, "rollout_p": 1.0},
    "elastic": {"gamma": 1.0, "elastic_window": 1 << 20},
    "block-causal": {},   # exact at every step (test_cache_block_causal.py); serves only block-causal models
}
# caches that serve only models of another attention pattern run on such a model (blocks = the decode blocks)
ATTENTION = {"block-causal": "block_causal:8"}
# linear: rows move through blocks together; threshold 0.1: rows end up in different blocks at the same step
COMMITS = {"linear": {"commit": "linear", "steps": 24}, "threshold": {"commit": "threshold", "threshold": 0.1}}


def test_every_registered_cache_has_a_refresh_every_step_setting():
    missing = sorted(set(CACHES.names()) - set(REFRESH_EVERY_STEP))
    assert not missing, f"caches {missing} have no entry in REFRESH_EVERY_STEP (tests/cache/test_cache_exactness.py)"


@pytest.mark.parametrize("commit", sorted(COMMITS))
@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("name", sorted(CACHES.names()))
def test_refresh_every_step_equals_none(name, arch, commit):
    if name not in REFRESH_EVERY_STEP:
        pytest.fail(f"cache {name!r} has no entry in REFRESH_EVERY_STEP")
    model, spec = tiny(arch, attention=ATTENTION.get(name, "full"))
    base = DecodeConfig(gen_length=24, block_length=8, stop_at_eos=False, **COMMITS[commit])
    cfg = base.replace(cache=name, **REFRESH_EVERY_STEP[name])
    for prompts in (PROMPTS, PROMPTS[1:2]):                      # batch > 1 (left padded) and batch 1
        expected, _ = run(model, spec, base, prompts)
        got, _ = run(model, spec, cfg, prompts)
        assert torch.equal(got, expected), f"{name} ({arch}, {commit}, batch {len(prompts)}) differs from none"


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("name", sorted(CACHES.names()))
def test_refresh_every_step_equals_none_with_guidance(name, arch):
    """Classifier-free guidance: the unconditional copy of each row keeps cache rows of its own, so a cache
    that refreshes every step still gives the tokens of `none` with the same guidance (ragged rows that
    move through blocks at different steps, and batch 1)."""
    model, spec = tiny(arch, attention=ATTENTION.get(name, "full"))
    base = DecodeConfig(gen_length=24, block_length=8, stop_at_eos=False, cfg_scale=1.5, **COMMITS["threshold"])
    cfg = base.replace(cache=name, **REFRESH_EVERY_STEP[name])
    for prompts in (PROMPTS, PROMPTS[1:2]):
        expected, _ = run(model, spec, base, prompts)
        got, _ = run(model, spec, cfg, prompts)
        assert torch.equal(got, expected), f"{name} ({arch}, batch {len(prompts)}) with guidance differs from none"
    unguided, _ = run(model, spec, base.replace(cfg_scale=0.0))
    assert not torch.equal(unguided, expected), "guidance changes the tokens"
