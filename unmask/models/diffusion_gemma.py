"""DiffusionGemma (`DiffusionGemmaForBlockDiffusion`): a causal prompt encoder and a canvas decoder that share
one set of Gemma-4 MoE layers.

* `encode` runs new tokens (the prompt, later each finished canvas) through the layers causally, with
  sliding-window layers seeing the last `sliding_window` positions, and appends each layer's K/V to the
  row's `PromptKV`. Sliding layers keep only the last `sliding_window - 1` entries (all that any later
  query may see); the last layer's attention and FFN are skipped: only its K/V are ever read.
* `decode` denoises a canvas: embeddings plus the self-conditioning signal (the previous step's soft
  prediction through a gated MLP), then every layer attends bidirectionally over the row's cached prompt
  K/V and the whole canvas. Final logits are soft-capped: cap · tanh(logits / cap).

Layers alternate sliding and global attention with their own head dims and K/V head counts; global layers
use proportional partial RoPE and take their values from the key projection (k = v). The model is pure
compute: it never samples, and the engine owns the K/V of each row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from unmask.models.attention import attend
from unmask.models.diffusion_gemma_config import (ARCHITECTURES, IGNORED_PREFIXES, MODEL_TYPES, GemmaConfig,
                                                  LayerShape, from_config, generation_defaults, name_map)
from unmask.models.gemma_blocks import ACTIVATIONS, Experts, GatedMLP, GemmaNorm, Router, inverse_frequencies, rotate

__all__ = ["ARCHITECTURES", "IGNORED_PREFIXES", "MODEL_TYPES", "DiffusionGemma", "PromptKV", "StackedKV", "build",
           "from_config", "generation_defaults", "name_map", "stack_prompts"]


@dataclass
class PromptKV:
    """One row's encoder K/V: per layer keys and values (H_kv, T, D) and their absolute positions (T,)."""

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    positions: list[Tensor] = field(default_factory=list)
    length: int = 0   # tokens encoded so far (the next position)


class GemmaAttention(nn.Module):
    def __init__(self, cfg: GemmaConfig, shape: LayerShape) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, shape.n_kv_heads, shape.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * shape.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, shape.n_kv_heads * shape.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, shape.n_kv_heads * shape.head_dim, bias=False) if shape.sliding else None
        self.o_proj = nn.Linear(cfg.n_heads * shape.head_dim, cfg.d_model, bias=False)
        self.q_norm = GemmaNorm(shape.head_dim, cfg.norm_eps)
        self.k_norm = GemmaNorm(shape.head_dim, cfg.norm_eps)
        self.v_norm = GemmaNorm(shape.head_dim, cfg.norm_eps, with_scale=False)
        self.register_buffer("inv_freq", inverse_frequencies(shape.head_dim, shape.rope_theta, shape.rotary_fraction,
                                                             shape.rope_factor, shape.proportional), persistent=False)

    def project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, Q, d) → q (B, H, Q, D), k and v (B, H_kv, Q, D); q and k normalised and rotated."""
        B, Q, _ = x.shape
        q = rotate(self.q_norm(self.q_proj(x).view(B, Q, self.n_heads, self.head_dim)), positions, self.inv_freq)
        raw_k = self.k_proj(x).view(B, Q, self.n_kv, self.head_dim)
        raw_v = raw_k if self.v_proj is None else self.v_proj(x).view(B, Q, self.n_kv, self.head_dim)
        k = rotate(self.k_norm(raw_k), positions, self.inv_freq)
        return q.transpose(1, 2), k.transpose(1, 2), self.v_norm(raw_v).transpose(1, 2)

    def output(self, q: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
        out = attend(q, keys, values, mask, scale=1.0)                        # (B, H, Q, D)
        return self.o_proj(out.transpose(1, 2).flatten(2))


class GemmaLayer(nn.Module):
    """Attention, then a dense gated MLP and a routed MoE side by side, each with its own norms."""

    def __init__(self, cfg: GemmaConfig, shape: LayerShape) -> None:
        super().__init__()
        d, eps = cfg.d_model, cfg.norm_eps
        self.sliding = shape.sliding
        self.self_attn = GemmaAttention(cfg, shape)
        self.mlp = GatedMLP(d, cfg.ffn_hidden, cfg.activation)
        self.router = Router(d, cfg.n_experts, cfg.top_k, eps)
        self.experts = Experts(d, cfg.moe_hidden, cfg.n_experts, cfg.activation)
        for name in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm", "post_feedforward_layernorm_1", "post_feedforward_layernorm_2",
                     "pre_feedforward_layernorm_2"):
            setattr(self, name, GemmaNorm(d, eps))
        self.encoder_scalar = nn.Parameter(torch.ones(1))   # per-layer output scale; the encoder and the
        self.decoder_scalar = nn.Parameter(torch.ones(1))   # decoder keep their own (buffers, never tied)

    def finish(self, h: Tensor, attn_out: Tensor, scalar: Tensor) -> Tensor:
        """The rest of the layer after attention: residual, dense MLP + MoE, residual, layer scale."""
        h = h + self.post_attention_layernorm(attn_out)
        dense = self.post_feedforward_layernorm_1(self.mlp(self.pre_feedforward_layernorm(h)))
        flat = h.reshape(-1, h.shape[-1])
        weights, index = self.router(flat)
        routed = self.experts(self.pre_feedforward_layernorm_2(flat), weights, index).view_as(h)
        h = h + self.post_feedforward_layernorm(dense + self.post_feedforward_layernorm_2(routed))
        return h * scalar


class SelfConditioning(nn.Module):
    """post_norm(embeddings + MLP(pre_norm(soft embeddings of the previous step's prediction)))."""

    def __init__(self, cfg: GemmaConfig) -> None:
        super().__init__()
        self.pre_norm = GemmaNorm(cfg.d_model, cfg.norm_eps)
        self.post_norm = GemmaNorm(cfg.d_model, cfg.norm_eps, with_scale=False)
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, embeddings: Tensor, soft: Tensor | None) -> Tensor:
        if soft is not None:   # no signal (a canvas's first step) adds exactly zero: the MLP has no biases
            x = self.pre_norm(soft)
            embeddings = embeddings + self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
        return self.post_norm(embeddings)


class DiffusionGemma(nn.Module):
    def __init__(self, cfg: GemmaConfig) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(GemmaLayer(cfg, shape) for shape in cfg.layers)
        self.norm = GemmaNorm(cfg.d_model, cfg.norm_eps)
        self.self_conditioning = SelfConditioning(cfg)
        self.embed_scale = cfg.d_model ** 0.5

    def build_buffers(self, device: torch.device | str) -> None:
        """Recompute the rotary frequencies (after loading onto a device from `meta`)."""
        for layer, shape in zip(self.layers, self.cfg.layers):
            layer.self_attn.inv_freq = inverse_frequencies(shape.head_dim, shape.rope_theta, shape.rotary_fraction,
                                                           shape.rope_factor, shape.proportional).to(device)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.embed(ids) * torch.tensor(self.embed_scale).to(self.embed.weight.dtype)

    # ---- the encoder ------------------------------------------------------------------------------
    def encode(self, ids: Tensor, past: PromptKV | None = None) -> PromptKV:
        """Append K/V of `ids` (T,) (positions continue after `past`) to one row's cache; returns it."""
        kv = past if past is not None else PromptKV()
        positions = torch.arange(kv.length, kv.length + ids.shape[0], device=ids.device)
        h, W = self.embed_tokens(ids[None]), self.cfg.sliding_window
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            q, k, v = layer.self_attn.project(layer.input_layernorm(h), positions[None])
            if len(kv.keys) <= i:
                kv.keys.append(k[0, :, :0]), kv.values.append(v[0, :, :0]), kv.positions.append(positions[:0])
            keys, values = torch.cat([kv.keys[i], k[0]], 1), torch.cat([kv.values[i], v[0]], 1)
            key_pos = torch.cat([kv.positions[i], positions])
            keep = slice(-(W - 1), None) if layer.sliding else slice(None)
            kv.keys[i], kv.values[i], kv.positions[i] = keys[:, keep], values[:, keep], key_pos[keep]
            if i == last:
                break   # the decoder reads only the last layer's K/V
            mask = key_pos[None, :] <= positions[:, None]
            if layer.sliding:
                mask &= key_pos[None, :] > positions[:, None] - W
            out = layer.self_attn.output(q, keys[None], values[None], mask[None, None])
            h = layer.finish(h, out, layer.encoder_scalar)
        kv.length += ids.shape[0]
        return kv

    # ---- the canvas decoder -----------------------------------------------------------------------
    def decode(self, canvas: Tensor, positions: Tensor, prompts: list[PromptKV] | list[StackedKV],
               self_conditioning: Tensor | None = None, conditioned: Tensor | None = None) -> Tensor:
        """Logits (B, C, V) float32, soft-capped, for canvases (B, C) at `positions` (B, C).

        prompts: each row's encoder K/V, or `stack_prompts` of them (callers that decode many steps over the
        same K/V stack once). self_conditioning: (B, C, V) the previous step's (processed) logits, or None;
        conditioned: (B,) bool, rows that use them (the others get no signal).
        """
        if prompts and isinstance(prompts[0], PromptKV):
            prompts = stack_prompts(prompts)
        h = self.embed_tokens(canvas)
        soft = None
        if self_conditioning is not None:
            weight = self.embed.weight
            soft = self_conditioning.softmax(-1, dtype=torch.float32).to(weight.dtype) @ weight
            soft = soft * torch.tensor(self.embed_scale).to(h.dtype)
            if conditioned is not None:
                soft = soft * conditioned.to(soft.dtype)[:, None, None]
        h = self.self_conditioning(h, soft)
        B, C = canvas.shape
        for layer, (keys, values, key_mask) in zip(self.layers, prompts):
            q, k, v = layer.self_attn.project(layer.input_layernorm(h), positions)
            mask = None if key_mask is None else torch.cat([key_mask, key_mask.new_ones(B, C)], 1)[:, None, None]
            out = layer.self_attn.output(q, torch.cat([keys, k], 2), torch.cat([values, v], 2), mask)
            h = layer.finish(h, out, layer.decoder_scalar)
        logits = nn.functional.linear(self.norm(h), self.embed.weight).float()
        return torch.tanh(logits / self.cfg.softcap) * self.cfg.softcap


StackedKV = tuple[Tensor, Tensor, "Tensor | None"]   # one layer: keys, values (B, H_kv, T, D), key mask (B, T)


def stack_prompts(prompts: list[PromptKV]) -> list[StackedKV]:
    """Every layer's K/V of every row, left-padded to the longest; the mask is None when no row is padded."""
    out = []
    for layer in range(len(prompts[0].keys)):
        lengths = [p.keys[layer].shape[1] for p in prompts]
        longest = max(lengths)
        keys = torch.stack([nn.functional.pad(p.keys[layer], (0, 0, longest - n, 0)) for p, n in zip(prompts, lengths)])
        values = torch.stack([nn.functional.pad(p.values[layer], (0, 0, longest - n, 0))
                              for p, n in zip(prompts, lengths)])
        mask = None
        if min(lengths) < longest:
            mask = torch.arange(longest, device=keys.device)[None] >= torch.tensor(
                [longest - n for n in lengths], device=keys.device)[:, None]
        out.append((keys, values, mask))
    return out


def build(arch: GemmaConfig) -> DiffusionGemma:
    return DiffusionGemma(arch)
