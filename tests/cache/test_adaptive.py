"""d2Cache (`d2`): refresh-all equals no cache, a small selection per step, batch == solo, nbytes/reset."""
from __future__ import annotations

import pytest
import torch

from tests.cache.cache_tiny import PROMPTS, run, tiny
from unmask.cache.adaptive import certainty_density, inflate, nucleus
from unmask.config import DecodeConfig

BASE = DecodeConfig(gen_length=16, steps=16, block_length=8)
REFRESH_ALL = {"d2_current_k": 1024, "rollout_p": 1.0}


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_refresh_every_step_equals_none(arch):
    model, spec = tiny(arch)
    ref, _ = run(model, spec, BASE)
    out, cache = run(model, spec, BASE.replace(cache="d2", **REFRESH_ALL))
    assert torch.equal(out, ref)
    assert set(cache.step_costs) == {(16 + len(PROMPTS[0])) * 2}


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_batch_equals_solo(arch):
    model, spec = tiny(arch)
    cfg = BASE.replace(cache="d2", d2_current_k=4)
    batch, _ = run(model, spec, cfg)
    solo = torch.cat([run(model, spec, cfg, [p])[0] for p in PROMPTS])
    assert torch.equal(batch, solo)


def test_selection_is_small():
    model, spec = tiny("llada")
    _, cache = run(model, spec, BASE.replace(cache="d2", d2_current_k=4), [PROMPTS[0]])
    L = 16 + len(PROMPTS[0])
    assert cache.step_costs[0] == L * 2
    assert max(cache.step_costs[1:]) <= (4 + 1 + 4) * 2   # k masks + 1 decoded + a small rollout nucleus
    assert cache.nbytes() > 0
    assert cache.cache.nbytes() == 0   # freed when the last row left its group


def test_helpers():
    decoded = torch.tensor([[True, True, False, False, False, False]])
    d = certainty_density(decoded, 1.0)
    assert d.shape == (1, 6) and bool((d[0, :-1] >= d[0, 1:]).all())
    assert inflate(torch.tensor([[True, False, False, True, False]]), 3).tolist() == [[True, True, True, True, False]]
    picked = nucleus(torch.tensor([[5.0, 1.0, 1.0, 3.0]]), 0.5, torch.ones(1, 4, dtype=torch.bool))
    assert picked.tolist() == [[True, False, False, False]]
