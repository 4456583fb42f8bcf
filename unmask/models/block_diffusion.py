"""Block-diffusion checkpoints on Qwen backbones: SDAR (Qwen3, arXiv 2510.06303) and Fast-dLLM v2 (Qwen2.5,
arXiv 2509.26328). Both attend block-causally (bidirectional inside a block of n, causal between blocks), so a
finished block's K/V are exact and the `block-causal` cache reuses them.

* Fast-dLLM v2 (`Fast_dLLM_QwenForCausalLM`): Qwen2 tensor names, q/k/v biases, block `bd_size` (32), mask
  151665, stop token 151645 (im_end); logits shifted by one (token shift, METHODS.md §4).
* SDAR (`SDARForCausalLM`): Qwen3 tensor names, per-head q_norm / k_norm, explicit `head_dim`, no biases
  unless `attention_bias`; block `block_size` (4 for the published chat models), logits not shifted (SGLang's
  dLLM path decodes a block from its own positions).
"""
from __future__ import annotations

from typing import Any

from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_id_key, token_ids_key
from unmask.models.hf_names import attention_names, outer_names, per_layer, swiglu_names
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig

ARCHITECTURES = ("Fast_dLLM_QwenForCausalLM", "SDARForCausalLM")
MODEL_TYPES = ("fast_dllm_qwen", "sdar")

PUBLISHED = {  # architecture -> (block key, default block, mask id, eos id, logit shift, preset)
    "Fast_dLLM_QwenForCausalLM": ("bd_size", 32, 151665, 151645, 1, "fast-dllm-v2"),
    "SDARForCausalLM": ("block_size", 4, 151669, 151645, 0, "sdar"),
}


def is_sdar(cfg: dict[str, Any]) -> bool:
    archs = cfg.get("architectures") or []
    return (archs[:1] == ["SDARForCausalLM"]) or (not archs and cfg.get("model_type") == "sdar")


def from_config(cfg: dict[str, Any]) -> tuple[ArchConfig, DiffusionSpec]:
    """Read a Fast-dLLM v2 or SDAR `config.json` into our architecture config and diffusion spec."""
    if cfg.get("rope_scaling"):
        raise ValueError(f"rope_scaling={cfg['rope_scaling']!r} is not supported; unmask supports only plain RoPE")
    if cfg.get("use_sliding_window"):
        raise ValueError("use_sliding_window=true is not supported; unmask supports only full attention")
    sdar = is_sdar(cfg)
    block_key, block, mask, eos, shift, preset = PUBLISHED["SDARForCausalLM" if sdar else "Fast_dLLM_QwenForCausalLM"]
    n_heads = int_key(cfg, "num_attention_heads")
    context = int_key(cfg, "max_position_embeddings", 32768, maximum=MAX_CONTEXT)
    arch = ArchConfig(
        vocab_size=int_key(cfg, "vocab_size"), d_model=int_key(cfg, "hidden_size"),
        n_layers=int_key(cfg, "num_hidden_layers"), n_heads=n_heads,
        n_kv_heads=int_key(cfg, "num_key_value_heads", n_heads), ffn_hidden=int_key(cfg, "intermediate_size"),
        rope_theta=float_key(cfg, "rope_theta", 10000.0), norm_eps=float_key(cfg, "rms_norm_eps", 1e-6),
        max_positions=context, tie_embeddings=bool_key(cfg, "tie_word_embeddings", False),
        qkv_bias=bool_key(cfg, "attention_bias", False) if sdar else True, o_bias=False,
        head_dim_override=int_key(cfg, "head_dim") if sdar and cfg.get("head_dim") is not None else None,
        qk_norm=sdar)
    eos_ids = token_ids_key(cfg, "eos_token_id", eos)
    spec = DiffusionSpec(mask_id=token_id_key(cfg, "mask_token_id", mask), eos_ids=eos_ids, logit_shift=shift,
                         attention=f"block_causal:{int_key(cfg, block_key, block)}", context_len=context,
                         default_preset=preset, pad_id=token_id_key(cfg, "pad_token_id", eos_ids[0]))
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    return {**outer_names(arch), **per_layer(arch.n_layers, lambda i: {**attention_names(arch), **swiglu_names()})}
