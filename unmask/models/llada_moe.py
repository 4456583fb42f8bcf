"""LLaDA-MoE (`LLaDAMoEModelLM`, OLMoE-derived; LLaDA-MoE-7B-A1B): full bidirectional attention, logits not shifted.

Tensor names are Qwen/OLMoE-like (`model.embed_tokens`, `self_attn.{q,k,v,o}_proj` with biases when
`attention_bias`, per-head `q_norm`/`k_norm` when `qk_layernorm`). Layers whose `moe_layer_freq` entry is 0 have
a dense SwiGLU of `dense_intermediate_size`; the others a MoE (models/moe.py) of `num_experts` SwiGLU experts of
`expert_intermediate_size`: softmax router, top-k without renormalisation, an optional `expert_bias` added to the
scores (it weighs the experts too), and an optional layer-level `shared_expert` of `shared_expert_intermediate_size`.
"""
from __future__ import annotations

from typing import Any

from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_id_key, token_ids_key
from unmask.models.hf_names import attention_names, outer_names, per_layer, swiglu_names
from unmask.models.moe import MoEConfig
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig

ARCHITECTURES = ("LLaDAMoEModelLM", "LLaDAMoEModel")
MODEL_TYPES = ("lladamoe", "llada_moe")
MASK_ID, EOS_ID = 156895, 156892


def moe_layers(cfg: dict[str, Any], n_layers: int) -> tuple[int, ...]:
    """Indices of the dense layers from `moe_layer_freq` (a 0/1 list per layer; absent: every layer is MoE)."""
    freq = cfg.get("moe_layer_freq")
    if freq is None:
        return ()
    if not isinstance(freq, list) or len(freq) != n_layers or any(f not in (0, 1) for f in freq):
        raise ValueError(f"moe_layer_freq must be a list of {n_layers} zeros and ones, got {str(freq)[:60]}")
    return tuple(i for i, f in enumerate(freq) if f == 0)


def from_config(cfg: dict[str, Any]) -> tuple[ArchConfig, DiffusionSpec]:
    """Read a LLaDA-MoE `config.json` into our architecture config and diffusion spec."""
    for key in ("rope_scaling", "clip_qkv"):
        if cfg.get(key) is not None:
            raise ValueError(f"{key}={cfg[key]!r} is not supported by unmask's LLaDA-MoE")
    d_model, n_heads, n_layers = int_key(cfg, "hidden_size"), int_key(cfg, "num_attention_heads"), \
        int_key(cfg, "num_hidden_layers")
    head_dim = d_model // n_heads
    shared = cfg.get("shared_expert_intermediate_size")
    moe = MoEConfig(n_experts=int_key(cfg, "num_experts"), top_k=int_key(cfg, "num_experts_per_tok"),
                    expert_hidden=int_key(cfg, "expert_intermediate_size"),
                    shared_hidden=int_key(cfg, "shared_expert_intermediate_size") if shared is not None else 0,
                    scoring="softmax", norm_topk=False,
                    expert_bias=bool_key(cfg, "moe_router_enable_expert_bias", False), bias_in_weights=True)
    context = int_key(cfg, "max_position_embeddings", 4096, maximum=MAX_CONTEXT)
    bias = bool_key(cfg, "attention_bias", False)
    arch = ArchConfig(
        vocab_size=int_key(cfg, "vocab_size"), d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=int_key(cfg, "num_key_value_heads", n_heads),
        ffn_hidden=int_key(cfg, "dense_intermediate_size", int_key(cfg, "expert_intermediate_size")),
        rope_theta=float_key(cfg, "rope_theta", 10000.0), norm_eps=float_key(cfg, "rms_norm_eps", 1e-5),
        max_positions=context, tie_embeddings=bool_key(cfg, "tie_word_embeddings", False), qkv_bias=bias,
        o_bias=bias, qk_norm=bool_key(cfg, "qk_layernorm", False),
        rotary_dim=int(head_dim * float_key(cfg, "partial_rotary_factor", 1.0)), moe=moe,
        dense_layers=moe_layers(cfg, n_layers))
    eos = token_ids_key(cfg, "eos_token_id", EOS_ID)
    spec = DiffusionSpec(mask_id=token_id_key(cfg, "mask_token_id", MASK_ID), eos_ids=eos, logit_shift=0,
                         attention="full", context_len=context, default_preset="llada",
                         pad_id=token_id_key(cfg, "pad_token_id", eos[0]))
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    return {**outer_names(arch), **per_layer(arch.n_layers, lambda i: {**attention_names(arch), **mlp_names(arch, i)})}


def mlp_names(arch: ArchConfig, layer: int) -> dict[str, str]:
    if layer in arch.dense_layers:
        return swiglu_names()
    moe = arch.moe
    names = {"mlp.gate.weight": "mlp.gate.weight"}
    if moe.expert_bias:
        names["mlp.expert_bias"] = "mlp.gate.expert_bias"
    for e in range(moe.n_experts):
        names.update(swiglu_names(f"mlp.experts.{e}", f"mlp.experts.{e}"))
    if moe.shared_hidden:
        names.update(swiglu_names("shared_expert", "mlp.shared_experts"))
    return names
