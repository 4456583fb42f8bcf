"""Elastic-Cache (cache='elastic'): reuse between refreshes, drift-triggered deep refresh, per-row isolation."""
from __future__ import annotations

import pytest
import torch

from cache_tiny import PROMPTS, run, tiny
from unmask.cache.elastic import ElasticCache
from unmask.config import DecodeConfig
from unmask.errors import ConfigError

BASE = DecodeConfig(gen_length=16, schedule="full", commit="threshold", threshold=0.5, stop_at_eos=False)
L = len(PROMPTS[0]) + BASE.gen_length   # canvas length of the PROMPTS batch


def elastic(**kw) -> DecodeConfig:
    return BASE.replace(cache="elastic", elastic_window=4, **kw)


def test_reuse_computes_fewer_positions_x_layers_than_none():
    model, spec = tiny("llada")
    n = len(model.layers)
    _, none = run(model, spec, BASE)
    _, cache = run(model, spec, elastic(gamma=0.0))            # gamma 0: never refresh after the first step
    assert cache.step_costs[0] == n * L                          # the first forward is full
    assert all(c < n * L for c in cache.step_costs[1:])          # then only the query set, every layer
    assert bool((cache.positions_x_layers < none.positions_x_layers // 3).all())


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_drift_below_gamma_recomputes_deep_layers_next_step(arch, monkeypatch):
    model, spec = tiny(arch)
    n, gamma, seen = len(model.layers), 0.9, []
    request = ElasticCache.host_request

    def spy(self, state):   # after each step: this step's drift values and the boundary read back for the next
        sims = torch.stack([self.sims.get(i, torch.ones(state.batch)) for i in range(n)])   # (n, B)
        below = ((sims < gamma) & ~state.finished[None, :]).any(1).nonzero().flatten().tolist()
        values = request(self, state)
        active = (~state.finished).tolist()   # finished rows leave before the next step
        widths = [w for w, a in zip(values.tolist()[:state.batch], active) if a]
        bounds = [b for b, a in zip(values.tolist()[state.batch:], active) if a]
        seen.append((below[0] if below else n, max(widths, default=0), min(bounds, default=n)))
        return values

    monkeypatch.setattr(ElasticCache, "host_request", spy)
    _, cache = run(model, spec, elastic(gamma=gamma))
    refreshed = 0
    for t, (first_drift, width, b_min) in enumerate(seen[:-1]):
        assert b_min == first_drift                                   # the boundary is the first drifting layer
        expected = n * L if b_min == 0 else b_min * width + (n - b_min) * L
        assert cache.step_costs[t + 1] == expected                   # layers from the boundary on: whole canvas
        refreshed += b_min < n
    assert 0 < refreshed < len(seen) - 1                              # some steps refresh, some reuse


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_batch_rows_get_the_tokens_they_get_alone(arch):
    model, spec = tiny(arch)
    cfg = elastic(gamma=0.9)
    batch, _ = run(model, spec, cfg)
    for r, prompt in enumerate(PROMPTS):
        alone, _ = run(model, spec, cfg, [prompt])
        assert torch.equal(batch[r], alone[0]), f"row {r} differs in a batch ({arch})"


def test_nbytes_and_reset():
    model, spec = tiny("dream")
    _, cache = run(model, spec, elastic())
    assert cache.nbytes() > 0
    assert cache.cache.nbytes() == 0   # freed when the last row left its group


def test_preset_and_rejected_combinations():
    cfg = DecodeConfig.preset("elastic-cache")
    assert (cfg.cache, cfg.gen_length, cfg.elastic_window, cfg.threshold, cfg.gamma, cfg.track_num) == \
        ("elastic", 512, 16, 0.9, 0.9, 1)
    model, spec = tiny("llada", attention="block_causal:4")
    with pytest.raises(ConfigError):
        run(model, spec, elastic())
