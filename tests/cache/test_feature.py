"""dLLM-Cache (`feature`): refresh-all equals no cache, V-verify recomputes rho of the response, nbytes/reset."""
from __future__ import annotations

import pytest
import torch

from tests.cache.cache_tiny import PROMPTS, run, tiny
from unmask.config import DecodeConfig
from unmask.errors import ConfigError

BASE = DecodeConfig(gen_length=16, steps=16, block_length=8)
REFRESH_ALL = {"prompt_interval": 1, "response_interval": 1}


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("first_layer", [True, False])
def test_refresh_every_step_equals_none(arch, first_layer):
    model, spec = tiny(arch)
    ref, _ = run(model, spec, BASE)
    out, _ = run(model, spec, BASE.replace(cache="feature", refresh_first_layer=first_layer, **REFRESH_ALL))
    assert torch.equal(out, ref)


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_batch_rows_keep_their_own_state(arch):
    model, spec = tiny(arch)
    cfg = BASE.replace(cache="feature", rho=0.5, response_interval=4)
    batch, _ = run(model, spec, cfg)
    solo = torch.cat([run(model, spec, cfg, [p])[0] for p in PROMPTS])
    assert torch.equal(batch, solo)


def test_rho_recomputes_that_fraction_of_the_response():
    model, spec = tiny("llada")
    G, L, layers = 16, 16 + len(PROMPTS[0]), 2
    cfg = BASE.replace(cache="feature", rho=0.25, response_interval=4, prompt_interval=100, refresh_first_layer=False)
    _, cache = run(model, spec, cfg, [PROMPTS[0]])
    # step 0: every row, every layer; steps 4, 8, 12: the response in every layer; others: G/4 rows per layer
    expected = L * layers + 3 * G * layers + 12 * (G // 4) * layers
    assert cache.positions_x_layers.tolist() == [expected]
    assert cache.step_costs[1] == (G // 4) * layers


def test_nbytes_and_reset():
    model, spec = tiny("llada")
    _, cache = run(model, spec, BASE.replace(cache="feature"))
    assert cache.nbytes() > 0
    assert cache.cache.nbytes() == 0   # freed when the last row left its group


def test_block_causal_model_is_rejected():
    from unmask.cache.feature import FeatureCache
    _, spec = tiny("dream", attention="block_causal:4")
    with pytest.raises(ConfigError, match="block-causal|block_causal"):
        FeatureCache(spec=spec)


def test_bad_knobs_are_rejected():
    with pytest.raises(ConfigError):
        BASE.replace(cache="feature", rho=1.5)
    with pytest.raises(ConfigError):
        BASE.replace(cache="feature", response_interval=0)
