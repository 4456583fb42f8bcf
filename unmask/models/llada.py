"""LLaDA (LLaDA-8B-Base/Instruct, LLaDA-1.5): LLaMA-like, bidirectional, MHA or GQA, logits not shifted.

Config keys and tensor names are those of the published checkpoints (`model_type: llada`).
"""
from __future__ import annotations

from typing import Any

from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig

ARCHITECTURES = ("LLaDAModelLM",)
MODEL_TYPES = ("llada",)

# config switches of the OLMo-derived LLaDA code that this implementation does not support: key -> value it must have
REQUIRED_VALUES = {"block_type": "llama", "layer_norm_type": "rms", "activation_type": "silu", "rope": True,
                   "alibi": False, "include_bias": False, "scale_logits": False, "input_emb_norm": False,
                   "attention_layer_norm": False}

LAYER_NAMES = {  # checkpoint suffix under model.transformer.blocks.{i} -> our name under layers.{i}
    "attn_norm.weight": "attn_norm.weight",
    "q_proj.weight": "attn.q_proj.weight",
    "k_proj.weight": "attn.k_proj.weight",
    "v_proj.weight": "attn.v_proj.weight",
    "attn_out.weight": "attn.o_proj.weight",
    "ff_norm.weight": "ffn_norm.weight",
    "ff_proj.weight": "mlp.gate_proj.weight",
    "up_proj.weight": "mlp.up_proj.weight",
    "ff_out.weight": "mlp.down_proj.weight",
}


def from_config(cfg: dict[str, Any]) -> tuple[ArchConfig, DiffusionSpec]:
    """Read a LLaDA `config.json` into our architecture config and diffusion spec."""
    for key, want in REQUIRED_VALUES.items():
        if key in cfg and cfg[key] is not None and cfg[key] != want:
            raise ValueError(f"LLaDA config has {key}={cfg[key]!r}; unmask supports only {want!r}")
    d_model, n_heads = cfg["d_model"], cfg["n_heads"]
    mlp_hidden = cfg.get("mlp_hidden_size") or cfg.get("mlp_ratio", 4) * d_model
    context = cfg.get("max_sequence_length", 4096)
    arch = ArchConfig(
        vocab_size=cfg.get("embedding_size") or cfg["vocab_size"], d_model=d_model, n_layers=cfg["n_layers"],
        n_heads=n_heads, n_kv_heads=cfg.get("n_kv_heads") or n_heads, ffn_hidden=mlp_hidden,
        rope_theta=float(cfg.get("rope_theta", 10000.0)), norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        max_positions=context, qkv_bias=bool(cfg.get("include_qkv_bias", False)),
        tie_embeddings=bool(cfg.get("weight_tying", False)),
    )
    eos = cfg.get("eos_token_id", 126081)
    spec = DiffusionSpec(mask_id=cfg.get("mask_token_id", 126336), eos_ids=(eos,), logit_shift=0,
                         attention="full", context_len=context, default_preset="llada",
                         pad_id=cfg.get("pad_token_id", eos))
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    names = {"model.transformer.wte.weight": "embed.weight", "model.transformer.ln_f.weight": "norm.weight"}
    if not arch.tie_embeddings:
        names["model.transformer.ff_out.weight"] = "lm_head.weight"
    layer_names = dict(LAYER_NAMES)
    if arch.qkv_bias:
        layer_names.update({f"{p}_proj.bias": f"attn.{p}_proj.bias" for p in "qkv"})
    for i in range(arch.n_layers):
        for theirs, ours in layer_names.items():
            names[f"model.transformer.blocks.{i}.{theirs}"] = f"layers.{i}.{ours}"
    return names
