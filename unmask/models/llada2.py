"""LLaDA2.0 / LLaDA2.1 (`LLaDA2MoeModelLM`, BailingMoeV2 layout; arXiv 2602.08676): a block-diffusion MoE.

Block-causal attention in blocks of 32 (SGLang's dLLM config; mask 156895), logits not shifted. Attention:
one fused `query_key_value` projection, per-head RMSNorm on q and k (`query_layernorm`, `key_layernorm`),
partial rotary (`partial_rotary_factor`: the first head_dim·factor dims rotate), output `dense`. FFN: the first
`first_k_dense_replace` layers are dense SwiGLU, the rest MoE (models/moe.py) with sigmoid router scores, a
load-balancing `expert_bias` used only to choose experts, group-limited top-k (`n_group`, `topk_group`),
weights renormalised over the chosen experts and scaled by `routed_scaling_factor`, plus shared experts.
"""
from __future__ import annotations

from typing import Any

from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_id_key, token_ids_key
from unmask.models.hf_names import outer_names, per_layer, swiglu_names
from unmask.models.moe import MoEConfig
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig

ARCHITECTURES = ("LLaDA2MoeModelLM",)
MODEL_TYPES = ("llada2_moe",)
BLOCK, MASK_ID, EOS_ID = 32, 156895, 156892

ATTENTION_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "attention.query_key_value.weight": "attn.qkv_proj.weight",
    "attention.query_layernorm.weight": "attn.q_norm.weight",
    "attention.key_layernorm.weight": "attn.k_norm.weight",
    "attention.dense.weight": "attn.o_proj.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def moe_config(cfg: dict[str, Any]) -> MoEConfig:
    return MoEConfig(
        n_experts=int_key(cfg, "num_experts"), top_k=int_key(cfg, "num_experts_per_tok"),
        expert_hidden=int_key(cfg, "moe_intermediate_size"),
        shared_hidden=int_key(cfg, "moe_intermediate_size") * int_key(cfg, "num_shared_experts", 0, minimum=0),
        scoring="sigmoid", norm_topk=True, n_group=int_key(cfg, "n_group", 1), topk_group=int_key(cfg, "topk_group", 1),
        routed_scale=float_key(cfg, "routed_scaling_factor", 1.0), expert_bias=True)


def from_config(cfg: dict[str, Any]) -> tuple[ArchConfig, DiffusionSpec]:
    """Read a LLaDA2 `config.json` into our architecture config and diffusion spec."""
    if cfg.get("rope_scaling"):
        raise ValueError(f"rope_scaling={cfg['rope_scaling']!r} is not supported; unmask supports only plain RoPE")
    d_model, n_heads = int_key(cfg, "hidden_size"), int_key(cfg, "num_attention_heads")
    head_dim = int_key(cfg, "head_dim") if cfg.get("head_dim") is not None else d_model // n_heads
    factor = float_key(cfg, "partial_rotary_factor", 1.0)
    if factor > 1:
        raise ValueError(f"partial_rotary_factor must be in (0, 1], got {factor}")
    context = int_key(cfg, "max_position_embeddings", 32768, maximum=MAX_CONTEXT)
    n_layers = int_key(cfg, "num_hidden_layers")
    arch = ArchConfig(
        vocab_size=int_key(cfg, "vocab_size"), d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=int_key(cfg, "num_key_value_heads", n_heads), ffn_hidden=int_key(cfg, "intermediate_size"),
        rope_theta=float_key(cfg, "rope_theta", 10000.0), norm_eps=float_key(cfg, "rms_norm_eps", 1e-6),
        max_positions=context, tie_embeddings=bool_key(cfg, "tie_word_embeddings", False),
        qkv_bias=bool_key(cfg, "use_qkv_bias", False), o_bias=bool_key(cfg, "use_bias", False),
        head_dim_override=head_dim, qk_norm=True, fused_qkv=True, rotary_dim=int(head_dim * factor),
        moe=moe_config(cfg) if cfg.get("num_experts") is not None else None,
        dense_layers=tuple(range(int_key(cfg, "first_k_dense_replace", 0, minimum=0, maximum=n_layers))))
    eos = token_ids_key(cfg, "eos_token_id", EOS_ID)
    spec = DiffusionSpec(mask_id=token_id_key(cfg, "mask_token_id", MASK_ID), eos_ids=eos, logit_shift=0,
                         attention=f"block_causal:{int_key(cfg, 'block_size', BLOCK)}", context_len=context,
                         default_preset="llada2", pad_id=token_id_key(cfg, "pad_token_id", eos[0]))
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    layer = dict(ATTENTION_NAMES)
    if arch.qkv_bias:
        layer["attention.query_key_value.bias"] = "attn.qkv_proj.bias"
    if arch.o_bias:
        layer["attention.dense.bias"] = "attn.o_proj.bias"

    def layer_names(i: int) -> dict[str, str]:
        dense = arch.moe is None or i in arch.dense_layers
        return {**layer, **(swiglu_names() if dense else moe_names(arch.moe))}
    return {**outer_names(arch, embed="model.word_embeddings.weight"), **per_layer(arch.n_layers, layer_names)}


def moe_names(moe: MoEConfig) -> dict[str, str]:
    names = {"mlp.gate.weight": "mlp.gate.weight", "mlp.gate.expert_bias": "mlp.gate.expert_bias"}
    for e in range(moe.n_experts):
        names.update(swiglu_names(f"mlp.experts.{e}", f"mlp.experts.{e}"))
    if moe.shared_hidden:
        names.update(swiglu_names("mlp.shared_experts", "mlp.shared_experts"))
    return names
