"""Each cache does what it exists for, shown by its counter of positions x layers computed per forward."""
from __future__ import annotations

import pytest
import torch

from cache_tiny import PROMPTS, run, tiny
from unmask.config import DecodeConfig

G, BL, LAYERS = 16, 8, 2
P = max(len(p) for p in PROMPTS)
L = P + G
CFG = DecodeConfig(gen_length=G, block_length=BL, steps=G, stop_at_eos=False)  # linear: 8 steps per block


@pytest.mark.parametrize("arch,shift", [("llada", 0), ("dream", 1)])
def test_costs_per_step(arch, shift):
    model, spec = tiny(arch)
    costs = {name: run(model, spec, CFG.replace(cache=name))[1].step_costs for name in ("none", "prefix", "dual")}
    assert costs["none"] == [L * LAYERS] * G
    # block starts: one full forward (fused with decoding), then only the block (+ position s-1 for Dream)
    assert costs["dual"] == ([L * LAYERS] + [(BL + shift) * LAYERS] * (BL - 1)) * 2
    assert costs["prefix"] == [L * LAYERS] + [(G + shift) * LAYERS] * (BL - 1) + \
        [L * LAYERS] + [(BL + shift) * LAYERS] * (BL - 1)


def test_vicinity_computes_block_and_neighbours():
    model, spec = tiny("llada")
    cache = run(model, spec, CFG.replace(cache="vicinity", vicinity_size=2, vicinity_warmup_steps=2))[1]
    assert cache.step_costs == [L * LAYERS] * 2 + [(BL + 4) * LAYERS] * 6 + [L * LAYERS] + [(BL + 4) * LAYERS] * 7


def test_delayed_computes_only_uncached_positions():
    model, spec = tiny("llada")
    cache = run(model, spec, CFG.replace(cache="delayed", cache_reloading_step=8))[1]
    # refresh at steps 0 and 8; in between the masked slots plus the one decoded last step
    assert cache.step_costs[0] == cache.step_costs[8] == L * LAYERS
    assert cache.step_costs[1:8] == [(G - k + 1) * LAYERS for k in range(1, 8)]
    assert cache.step_costs[9:] == [(G - k + 1) * LAYERS for k in range(9, 16)]


def test_per_row_counter_stops_when_a_row_finishes():
    model, spec = tiny("llada")
    cfg = DecodeConfig(gen_length=24, block_length=8, stop_at_eos=False, commit="threshold", threshold=0.1,
                       cache="dual")
    _, cache = run(model, spec, cfg)
    per_row = cache.positions_x_layers
    assert per_row.shape == (len(PROMPTS),)
    assert int(per_row.max()) <= sum(cache.step_costs) and int(per_row.min()) < sum(cache.step_costs)
