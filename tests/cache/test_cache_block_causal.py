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
                "entropy-threshold": {"alg": "entropy", "threshold": 1.0},
                "learned": {"learned_filter": "tiny-arith", "filter_threshold": 0.5}}
NOT_EXACT = {"klass": "compares predictions of positions before their block opens (refused by the cache)",
             "slowfast": "drops the masked suffix from its fast steps' input (refused by every cache but none)",
             "learned": "reads the previous forward's predictions of positions before their block opens (refused by "
                        "the cache)"}


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
    with pytest.raises(ConfigError, match="commit 'learned' reads"):
        DecodeConfig(**BASE, cache="block-causal", commit="learned")


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


# ---- sub-blocks: decode windows that tile the model's blocks (Fast-dLLM v2's small_block_size) ---------------
BIG = 8   # a model block of 8 decoded in sub-blocks of 4 or 2; PROMPTS end at 0, 2 and 5 inside a model block


@pytest.mark.parametrize("sub", [4, 2])
def test_sub_blocks_fill_in_order_inside_the_model_block(sub):
    """One token per step: each sub-block is complete before the next one gets any token, and a row whose
    prompt ends inside a sub-block starts with that sub-block's remainder."""
    model, spec = tiny("llada", attention=f"block_causal:{BIG}")
    canvases = []
    prompt = [9, 10, 3, 4, 5]                                  # 5 tokens: generated index 0 sits at 5 % sub
    run(model, spec, DecodeConfig(gen_length=16, steps=16, block_length=sub, stop_at_eos=False), [prompt],
        on_step=canvases.append)
    first = sub - len(prompt) % sub                            # length of the first (partial) sub-block
    for step, canvas in enumerate(canvases[:-1]):
        filled = [t != 63 for t in canvas[0]]
        k = filled.index(False)                                # the first masked position: in the open sub-block
        end = first if k < first else first + ((k - first) // sub + 1) * sub     # the open sub-block's end
        assert not any(filled[end:]), f"step {step}: a token beyond the current sub-block"


@pytest.mark.parametrize("sub", [3, 16])
def test_sub_blocks_that_do_not_tile_the_model_block_are_refused(sub):
    model, spec = tiny("llada", attention=f"block_causal:{BIG}")
    with pytest.raises(ConfigError, match="divisor of 8"):
        run(model, spec, DecodeConfig(gen_length=48, block_length=sub))


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("rule", sorted(COMMIT.names()))
def test_block_causal_cache_with_sub_blocks_equals_none(rule, arch):
    if rule in NOT_EXACT:
        pytest.skip(NOT_EXACT[rule])
    model, spec = tiny(arch, attention=f"block_causal:{BIG}")
    for sub in (4, 2) if rule == "threshold" else (4,):      # Fast-dLLM v2's rule at two sub-block sizes
        base = DecodeConfig(gen_length=16, block_length=sub, stop_at_eos=False, commit=rule,
                            **COMMIT_KNOBS.get(rule, {}))
        for prompts in (PROMPTS, PROMPTS[2:3]):           # ragged batch and batch 1 (prompt ends mid-block)
            expected, _ = run(model, spec, base, prompts)
            got, _ = run(model, spec, base.replace(cache="block-causal"), prompts)
            assert torch.equal(got, expected), f"{rule} ({arch}, sub-block {sub}, batch {len(prompts)}) differs"


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_sub_block_steps_compute_the_whole_model_block(arch):
    """As in the reference, every step computes the model block holding the sub-block (n + shift positions),
    never more at a sub-block change; two blocks only when a model block finishes."""
    model, spec = tiny(arch, attention=f"block_causal:{BIG}")
    cfg = DecodeConfig(gen_length=16, steps=16, block_length=4, stop_at_eos=False, cache="block-causal")
    _, cached = run(model, spec, cfg, PROMPTS[:1])            # prompt of 8 = one whole model block
    layers, shift = len(model.layers), spec.logit_shift
    assert cached.step_costs[0] == (8 + 16) * layers          # the first step prefills the canvas
    later = cached.step_costs[1:]
    assert later.count((2 * BIG + shift) * layers) == 1       # the first model block finishes once
    assert set(later) == {(BIG + shift) * layers, (2 * BIG + shift) * layers}
