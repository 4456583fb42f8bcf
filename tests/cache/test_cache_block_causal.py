"""Block-causal models: attention blocks from each row's positions, decode blocks = model blocks, and the exact
`block-causal` cache (only the current block computed) giving the tokens of `none` for every commit rule."""
from __future__ import annotations

import pytest
import torch

from cache_tiny import PROMPTS, run, tiny
from unmask.cache.kv_store import attention_mask
from unmask.config import DecodeConfig
from unmask.decoding import COMMIT
from unmask.errors import ConfigError

N = 4   # the tiny models' attention block; PROMPTS have 8, 2 and 5 tokens: offsets 0, 3 and 1 in their first block
BASE = dict(gen_length=16, block_length=N, stop_at_eos=False)
COMMIT_KNOBS = {"linear": {"steps": 16}, "eb": {"alg": "entropy", "eb_gamma": 0.5},
                "hierarchy": {"threshold": 0.7, "low_threshold": 0.2}, "dimple": {"steps": 16, "threshold": 0.5},
                "cosine": {"steps": 8}, "remdm": {"seed": 5},
                "dream": {"steps": 8, "alg": "entropy"}, "threshold": {"threshold": 0.3},
                "entropy-threshold": {"alg": "entropy", "threshold": 1.0}}
NOT_EXACT = {"klass": "compares predictions of positions before their block opens (refused by the cache)",
             "slowfast": "hides the suffix after its span from the input, which no cache plans (refused)"}


def test_block_causal_mask_follows_each_rows_positions():
    key_mask = torch.tensor([[False, True, True, True, True, True], [True] * 6])
    positions = torch.tensor([[0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]])
    mask = attention_mask(key_mask, None, "block_causal:2", positions)[:, 0]     # (B, L, L)
    # row 0 is left-padded by one: its blocks are canvas {1,2} {3,4} {5}, row 1's are {0,1} {2,3} {4,5}
    assert mask[0, 2].tolist() == [False, True, True, False, False, False]
    assert mask[0, 3].tolist() == [False, True, True, True, True, False]
    assert mask[1, 2].tolist() == [True, True, True, True, False, False]
    part = attention_mask(key_mask, torch.tensor([[5], [1]]), "block_causal:2", positions)[:, 0, 0]
    assert part[0].tolist() == [False, True, True, True, True, True] and part[1].tolist() == [True, True] + [False] * 4


def test_a_row_decodes_the_same_alone_and_left_padded():
    """Blocks count from each row's first token, so padding a row's prompt changes nothing it computes."""
    model, spec = tiny("llada", attention=f"block_causal:{N}")
    cfg = DecodeConfig(**BASE, commit="threshold", threshold=0.3)
    together, _ = run(model, spec, cfg, PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        alone, _ = run(model, spec, cfg, [prompt])
        assert torch.equal(together[i], alone[0]), f"row {i} depends on its batch"


def test_decode_blocks_are_the_model_blocks():
    """The first window of a row whose prompt ends inside a model block is that block's remainder."""
    model, spec = tiny("llada", attention=f"block_causal:{N}")
    canvases = []
    run(model, spec, DecodeConfig(**BASE, steps=16), [[9, 10, 3, 4, 5]], on_step=canvases.append)  # 5 tokens: offset 1
    first_full = next(i for i, c in enumerate(canvases) if all(t != 63 for t in c[0][:3]))
    assert first_full == 2 and any(t == 63 for t in canvases[first_full][0][3:])   # 3 steps fill [0, 3), not 4


def test_mismatched_block_length_is_refused():
    model, spec = tiny("llada", attention=f"block_causal:{N}")
    with pytest.raises(ConfigError, match="block_length=4"):
        run(model, spec, DecodeConfig(gen_length=16, block_length=8))
    with pytest.raises(ConfigError, match="block_length=4"):
        run(model, spec, DecodeConfig(gen_length=16, schedule="full"))


def test_caches_refuse_the_wrong_attention():
    model, spec = tiny("llada", attention=f"block_causal:{N}")
    with pytest.raises(ConfigError, match="block-causal"):
        run(model, spec, DecodeConfig(**BASE, cache="dual"))
    full_model, full_spec = tiny("llada")
    with pytest.raises(ConfigError, match="block-causal models"):
        run(full_model, full_spec, DecodeConfig(**BASE, cache="block-causal"))
    with pytest.raises(ConfigError, match="klass"):
        DecodeConfig(**BASE, cache="block-causal", commit="klass")


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("rule", sorted(COMMIT.names()))
def test_block_causal_cache_equals_none(rule, arch):
    if rule in NOT_EXACT:
        pytest.skip(NOT_EXACT[rule])
    model, spec = tiny(arch, attention=f"block_causal:{N}")
    base = DecodeConfig(**BASE, commit=rule, **COMMIT_KNOBS.get(rule, {}))
    for prompts in (PROMPTS, PROMPTS[1:2]):              # ragged batch (offsets 0, 3, 1) and batch 1
        expected, _ = run(model, spec, base, prompts)
        got, costs = run(model, spec, base.replace(cache="block-causal"), prompts)
        assert torch.equal(got, expected), f"{rule} ({arch}, batch {len(prompts)}) differs from none"


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_block_causal_cache_computes_only_the_current_block(arch):
    model, spec = tiny(arch, attention=f"block_causal:{N}")
    cfg = DecodeConfig(**BASE, steps=16)
    _, plain = run(model, spec, cfg, PROMPTS[:1])
    _, cached = run(model, spec, cfg.replace(cache="block-causal"), PROMPTS[:1])
    layers, shift = len(model.layers), spec.logit_shift
    L = 8 + 16
    assert plain.step_costs == [L * layers] * 16
    # prompt of 8 = two whole blocks (offset 0): first step prefills [0, 12); then the block (+ the finished one
    # at each block change), plus the shifted model's position before the block
    assert cached.step_costs[0] == L * layers
    assert set(cached.step_costs[1:]) == {(N + shift) * layers, (2 * N + shift) * layers}
    assert cached.positions_x_layers.item() < plain.positions_x_layers.item() / 2


def test_token_editing_on_a_block_causal_model_is_exact_with_the_cache():
    """LLaDA2.1's editing rule changes committed tokens of the current block (recomputed every step); the
    verifying rules (low-confidence, wino) need the shadow block and cache 'none'."""
    model, spec = tiny("llada", attention=f"block_causal:{N}")
    base = DecodeConfig(**BASE, steps=8, remask="edit", edit_threshold=0.05)
    expected, _ = run(model, spec, base)
    got, _ = run(model, spec, base.replace(cache="block-causal"))
    assert torch.equal(got, expected)
