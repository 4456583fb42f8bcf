"""Fused q|k|v and gate|up projections (made at load): same logits as the unfused model, same tensor names."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unmask.models.cache_view import FullView
from unmask.models.fused import fuse_projections, is_fused
from unmask.models.loader import load_model


@pytest.mark.parametrize("which", ["llada_dir", "dream_dir"])   # MHA; GQA with q/k/v biases (Dream)
def test_fused_model_gives_the_unfused_logits(which, request):
    path = request.getfixturevalue(which)
    fused, _ = load_model(path, fuse=True)
    plain, _ = load_model(path)   # on the CPU the default is unfused (it measured faster there)
    assert is_fused(fused) and not is_fused(plain)
    assert hasattr(fused.layers[0].attn, "qkv_proj") and not hasattr(fused.layers[0].attn, "q_proj")
    assert hasattr(fused.layers[0].mlp, "gate_up_proj")
    ids = torch.randint(3, 80, (3, 20), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(20).expand(3, 20)
    key_mask = torch.ones(3, 20, dtype=torch.bool)
    key_mask[1, :4] = False
    with torch.inference_mode():
        a = fused(ids, positions, FullView(key_mask), None)
        b = plain(ids, positions, FullView(key_mask), None)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fused_model_keeps_the_checkpoint_tensor_names(llada_dir):
    fused, _ = load_model(llada_dir, fuse=True)
    plain, _ = load_model(llada_dir, fuse=False)
    state, reference = fused.state_dict(), plain.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    # an unfused state dict loads into the fused model (and back out unchanged)
    other = fuse_projections(load_model(llada_dir, fuse=False)[0])
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    other.load_state_dict(reference)
    assert all(torch.equal(other.state_dict()[k], reference[k]) for k in reference)
    assert "model.transformer.blocks.0.q_proj.weight" in load_file(str(llada_dir / "model.safetensors"))


def test_fused_model_saves_and_reloads_under_the_checkpoint_names(llada_dir, tmp_path):
    import json

    from unmask.models.loader import parse_config, save_model
    fused, _ = load_model(llada_dir, fuse=True)
    config = json.loads((llada_dir / "config.json").read_text())
    save_model(fused, parse_config(config)[2], tmp_path, config)
    assert load_file(str(tmp_path / "model.safetensors")).keys() == load_file(str(llada_dir / "model.safetensors")).keys()
    again, _ = load_model(tmp_path)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in fused.state_dict().items())
