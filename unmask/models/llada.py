"""LLaDA (LLaDA-8B-Base/Instruct, LLaDA-1.5): LLaMA-like, bidirectional, MHA or GQA, logits not shifted.

Config keys and tensor names are those of the published checkpoints (`model_type: llada`).
"""
from __future__ import annotations

from typing import Any

from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_id_key, token_ids_key
from unmask.models.latent import CHECKPOINT_NAMES as LATENT_NAMES, latent_features_key
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
    d_model, n_heads = int_key(cfg, "d_model"), int_key(cfg, "n_heads")
    mlp_hidden = (int_key(cfg, "mlp_hidden_size") if cfg.get("mlp_hidden_size") is not None
                  else int_key(cfg, "mlp_ratio", 4) * d_model)
    context = int_key(cfg, "max_sequence_length", 4096, maximum=MAX_CONTEXT)
    vocab = int_key(cfg, "embedding_size") if cfg.get("embedding_size") is not None else int_key(cfg, "vocab_size")
    arch = ArchConfig(
        vocab_size=vocab, d_model=d_model, n_layers=int_key(cfg, "n_layers"),
        n_heads=n_heads, n_kv_heads=int_key(cfg, "n_kv_heads", n_heads), ffn_hidden=mlp_hidden,
        rope_theta=float_key(cfg, "rope_theta", 10000.0), norm_eps=float_key(cfg, "rms_norm_eps", 1e-5),
        max_positions=context, qkv_bias=bool_key(cfg, "include_qkv_bias", False),
        tie_embeddings=bool_key(cfg, "weight_tying", False), latent_features=latent_features_key(cfg),
    )
    eos = token_ids_key(cfg, "eos_token_id", 126081)
    # block_size: unmask's key for a LLaDA-layout model trained block-causally (BD3-LM, `unmask train --objective bd3`)
    attention = f"block_causal:{int_key(cfg, 'block_size')}" if cfg.get("block_size") is not None else "full"
    causal = bool_key(cfg, "is_causal", False)  # unmask's key for a next-token model (`unmask train --objective ar`)
    if causal and cfg.get("block_size") is not None:
        raise ValueError("is_causal and block_size exclude each other: a causal model has no diffusion blocks")
    spec = DiffusionSpec(mask_id=token_id_key(cfg, "mask_token_id", 126336), eos_ids=eos, logit_shift=1 if causal else 0,
                         attention="block_causal:1" if causal else attention, context_len=context,
                         default_preset="llada" if attention == "full" else "block-diffusion",
                         pad_id=token_id_key(cfg, "pad_token_id", eos[0]), autoregressive=causal,
                         latent_conditioned=arch.latent_features is not None)
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    names = {"model.transformer.wte.weight": "embed.weight", "model.transformer.ln_f.weight": "norm.weight"}
    if not arch.tie_embeddings:
        names["model.transformer.ff_out.weight"] = "lm_head.weight"
    if arch.latent_features:
        names.update(LATENT_NAMES)
    layer_names = dict(LAYER_NAMES)
    if arch.qkv_bias:
        layer_names.update({f"{p}_proj.bias": f"attn.{p}_proj.bias" for p in "qkv"})
    for i in range(arch.n_layers):
        for theirs, ours in layer_names.items():
            names[f"model.transformer.blocks.{i}.{theirs}"] = f"layers.{i}.{ours}"
    return names
