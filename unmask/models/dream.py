"""Dream (Dream-v0-Base/Instruct-7B): Qwen2-like, GQA, q/k/v biases, full attention, shifted logits.

Dream was initialised from an autoregressive model, so the prediction for position i comes from hidden
state i-1 (`logit_shift=1`); every per-position rule downstream is offset by one.
"""
from __future__ import annotations

from typing import Any

from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_id_key, token_ids_key
from unmask.models.hf_names import attention_names, outer_names, per_layer, swiglu_names
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig

ARCHITECTURES = ("DreamModel",)
MODEL_TYPES = ("Dream", "dream")
TRAINED_CONTEXT = 2048  # Dream-v0 was trained on 2,048-token sequences (prompt + answer)


def from_config(cfg: dict[str, Any]) -> tuple[ArchConfig, DiffusionSpec]:
    """Read a Dream `config.json` into our architecture config and diffusion spec."""
    if cfg.get("rope_scaling"):
        raise ValueError(f"Dream config has rope_scaling={cfg['rope_scaling']!r}; unmask supports only plain RoPE")
    if cfg.get("use_sliding_window"):
        raise ValueError("Dream config has use_sliding_window=true; unmask supports only full attention")
    n_heads = int_key(cfg, "num_attention_heads")
    context = min(int_key(cfg, "max_position_embeddings", TRAINED_CONTEXT, maximum=MAX_CONTEXT), TRAINED_CONTEXT)
    arch = ArchConfig(
        vocab_size=int_key(cfg, "vocab_size"), d_model=int_key(cfg, "hidden_size"),
        n_layers=int_key(cfg, "num_hidden_layers"), n_heads=n_heads,
        n_kv_heads=int_key(cfg, "num_key_value_heads", n_heads), ffn_hidden=int_key(cfg, "intermediate_size"),
        rope_theta=float_key(cfg, "rope_theta", 10000.0), norm_eps=float_key(cfg, "rms_norm_eps", 1e-6),
        max_positions=context, qkv_bias=True, tie_embeddings=bool_key(cfg, "tie_word_embeddings", False),
    )
    eos = token_ids_key(cfg, "eos_token_id", 151643)
    spec = DiffusionSpec(mask_id=token_id_key(cfg, "mask_token_id", 151666), eos_ids=eos, logit_shift=1,
                         attention="full", context_len=context, default_preset="dream",
                         pad_id=token_id_key(cfg, "pad_token_id", eos[0]))
    return arch, spec


def name_map(arch: ArchConfig) -> dict[str, str]:
    """Every tensor the checkpoint must hold → the parameter it loads into."""
    return {**outer_names(arch), **per_layer(arch.n_layers, lambda i: {**attention_names(arch), **swiglu_names()})}
