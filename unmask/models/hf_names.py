"""Tensor names shared by the Hugging Face Llama/Qwen-style checkpoint layouts (Dream, SDAR, Fast-dLLM v2,
LLaDA-MoE, LLaDA2): the outer tensors, the per-layer attention block, the SwiGLU MLP, and the per-layer prefix.
Each architecture module builds its name map from these plus what is its own."""
from __future__ import annotations

from typing import Callable

from unmask.models.transformer import ArchConfig

SWIGLU = ("gate_proj", "up_proj", "down_proj")


def outer_names(arch: ArchConfig, embed: str = "model.embed_tokens.weight") -> dict[str, str]:
    """The embedding, the final norm and (unless tied to the embedding) the LM head."""
    names = {embed: "embed.weight", "model.norm.weight": "norm.weight"}
    if not arch.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    return names


def attention_names(arch: ArchConfig) -> dict[str, str]:
    """One layer's two norms and q/k/v/o projections (their biases and q/k norms where the config has them)."""
    names = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight"}
    for p in "qkvo":
        names[f"self_attn.{p}_proj.weight"] = f"attn.{p}_proj.weight"
        if arch.o_bias if p == "o" else arch.qkv_bias:
            names[f"self_attn.{p}_proj.bias"] = f"attn.{p}_proj.bias"
    if arch.qk_norm:
        names.update({"self_attn.q_norm.weight": "attn.q_norm.weight", "self_attn.k_norm.weight": "attn.k_norm.weight"})
    return names


def swiglu_names(theirs: str = "mlp", ours: str = "mlp") -> dict[str, str]:
    """A SwiGLU MLP's three projections under the prefix `theirs` in the checkpoint, `ours` in the model."""
    return {f"{theirs}.{p}.weight": f"{ours}.{p}.weight" for p in SWIGLU}


def per_layer(n_layers: int, layer_names: Callable[[int], dict[str, str]]) -> dict[str, str]:
    """model.layers.{i}.<theirs> → layers.{i}.<ours> for every layer i."""
    return {f"model.layers.{i}.{theirs}": f"layers.{i}.{ours}"
            for i in range(n_layers) for theirs, ours in layer_names(i).items()}
