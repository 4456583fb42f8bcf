"""Checkpoint families by their published tensor names and configs: SDAR, Fast-dLLM v2 and LLaDA2 load from
tiny random checkpoints written in their own layout, and match an independent reference forward."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from reference_forward import llada2_forward, llada_moe_forward, qwen_forward
from unmask.errors import CheckpointError
from unmask.models.cache_view import MaskView
from unmask.models.block_mask import pattern_mask
from unmask.models.loader import load_model, parse_config

VOCAB = 48
QWEN = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "intermediate_size": 48, "vocab_size": VOCAB, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 64, "tie_word_embeddings": False, "mask_token_id": 47, "eos_token_id": 1,
        "pad_token_id": 0}
CONFIGS = {
    "fast-dllm-v2": {**QWEN, "architectures": ["Fast_dLLM_QwenForCausalLM"], "model_type": "fast_dllm_qwen",
                     "bd_size": 4},
    "sdar": {**QWEN, "architectures": ["SDARForCausalLM"], "model_type": "sdar", "head_dim": 12, "block_size": 4},
    "llada2": {"architectures": ["LLaDA2MoeModelLM"], "model_type": "llada2_moe", "hidden_size": 32,
               "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "partial_rotary_factor": 0.5,
               "num_hidden_layers": 3, "intermediate_size": 48, "moe_intermediate_size": 16, "num_experts": 8,
               "num_experts_per_tok": 2, "num_shared_experts": 1, "n_group": 4, "topk_group": 2,
               "routed_scaling_factor": 2.5, "first_k_dense_replace": 1, "vocab_size": VOCAB, "rope_theta": 10000.0,
               "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "tie_word_embeddings": False,
               "mask_token_id": 47, "eos_token_id": 1, "pad_token_id": 0, "block_size": 4},
    "llada-moe": {"architectures": ["LLaDAMoEModelLM"], "model_type": "lladamoe", "hidden_size": 32,
                  "num_attention_heads": 4, "num_key_value_heads": 4, "num_hidden_layers": 3, "num_experts": 6,
                  "num_experts_per_tok": 2, "expert_intermediate_size": 16, "dense_intermediate_size": 40,
                  "shared_expert_intermediate_size": 24, "moe_layer_freq": [0, 1, 1], "qk_layernorm": True,
                  "attention_bias": True, "moe_router_enable_expert_bias": True, "vocab_size": VOCAB,
                  "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 64,
                  "tie_word_embeddings": False, "mask_token_id": 47, "eos_token_id": 1, "pad_token_id": 0},
}
FORWARD = {"fast-dllm-v2": qwen_forward, "sdar": qwen_forward, "llada2": llada2_forward,
           "llada-moe": llada_moe_forward}
ATTENTION = {"fast-dllm-v2": "block_causal:4", "sdar": "block_causal:4", "llada2": "block_causal:4", "llada-moe": "full"}
PRESET = {"fast-dllm-v2": "fast-dllm-v2", "sdar": "sdar", "llada2": "llada2", "llada-moe": "llada"}


def write_checkpoint(path, family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the family's published names and shapes, saved with its config.json."""
    cfg = CONFIGS[family]
    arch, _, names = parse_config(cfg)
    from unmask.models.transformer import DecoderLM

    with torch.device("meta"):
        shapes = {n: p.shape for n, p in DecoderLM(arch).named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for theirs, ours in names.items():
        t = torch.randn(shapes[ours], generator=gen) * 0.3
        tensors[theirs] = 1 + 0.1 * t if theirs.endswith(("norm.weight", "layernorm.weight")) else t
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(cfg))
    return tensors


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_forward_matches_the_reference(tmp_path, family):
    tensors = write_checkpoint(tmp_path, family)
    model, spec = load_model(tmp_path)
    ids = torch.randint(2, VOCAB - 1, (2, 11), generator=torch.Generator().manual_seed(1))
    key_mask = torch.ones(2, 11, dtype=torch.bool)
    pos = torch.stack([torch.arange(11), torch.arange(11) + 3])            # row 1 starts mid-block
    mask = pattern_mask(key_mask, pos, spec.attention)
    with torch.no_grad():
        ours = model(ids, pos, MaskView(mask))
        ref = FORWARD[family](tensors, CONFIGS[family], ids, pos)
    assert spec.attention == ATTENTION[family]
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_specs_follow_the_published_configs(family):
    _, spec, _ = parse_config(CONFIGS[family])
    assert spec.logit_shift == (1 if family == "fast-dllm-v2" else 0)
    assert spec.default_preset == PRESET[family] and spec.mask_id == 47


def test_published_defaults_when_config_omits_them():
    cfg = {k: v for k, v in CONFIGS["llada2"].items() if k not in ("block_size", "mask_token_id")}
    cfg["vocab_size"] = 157184
    assert parse_config(cfg)[1].attention == "block_causal:32" and parse_config(cfg)[1].mask_id == 156895
    sdar = {k: v for k, v in CONFIGS["sdar"].items() if k not in ("block_size", "mask_token_id")}
    sdar["vocab_size"] = 151936
    assert parse_config(sdar)[1].attention == "block_causal:4" and parse_config(sdar)[1].mask_id == 151669


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_a_damaged_checkpoint_names_the_tensor(tmp_path, family):
    tensors = write_checkpoint(tmp_path, family)
    victim = sorted(n for n in tensors if ".layers.1." in n)[0]
    del tensors[victim]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=victim.replace(".", r"\.")):
        load_model(tmp_path)


def test_bad_moe_config_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="n_group"):
        parse_config({**CONFIGS["llada2"], "n_group": 3})
