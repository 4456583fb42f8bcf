"""The shared decoder stack (pre-norm, RoPE, SwiGLU) and its layer loop with the CacheView seams.

LLaDA and Dream differ only in configuration and tensor names, so both are this class. The model is pure
compute: ids and positions in, logits at the requested rows out; it never chooses what to decode.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unmask.models.attention import attend, attend_with_probs
from unmask.models.cache_view import CacheView, FullView, LayerView
from unmask.models.latent import LatentInput
from unmask.models.layers import RMSNorm, Rotary, SwiGLU
from unmask.models.moe import MoE, MoEConfig


@dataclass(frozen=True)
class ArchConfig:
    """Sizes and switches of one decoder, in architecture-neutral names."""

    vocab_size: int          # rows of the embedding and of the LM head
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    rope_theta: float
    norm_eps: float
    max_positions: int
    qkv_bias: bool = False
    tie_embeddings: bool = False
    head_dim_override: int | None = None   # an explicit head_dim (Qwen3 / SDAR, LLaDA2) instead of d_model / n_heads
    qk_norm: bool = False                  # per-head RMSNorm on q and k before RoPE (Qwen3 / SDAR, LLaDA2)
    fused_qkv: bool = False                # one q|k|v projection (LLaDA2's query_key_value)
    o_bias: bool = False
    rotary_dim: int | None = None          # partial rotary: only the first rotary_dim dims rotate (LLaDA2)
    moe: MoEConfig | None = None           # mixture-of-experts FFN in every layer not in `dense_layers`
    dense_layers: tuple[int, ...] = ()
    latent_features: int | None = None     # a λ input (Di4C student, models/latent.py) with this many features

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.d_model // self.n_heads

    def check(self) -> None:
        """Raise ValueError when the sizes cannot form a model."""
        if self.moe is not None:
            self.moe.check()
        if self.rotary_dim is not None and not (0 < self.rotary_dim <= self.head_dim and self.rotary_dim % 2 == 0):
            raise ValueError(f"rotary dim {self.rotary_dim} must be even and in (0, head_dim {self.head_dim}]")
        if self.head_dim_override is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "max_positions"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def gather_rows(x: Tensor, rows: Tensor) -> Tensor:
    """x: (B, Q, ...) gathered at rows (B, S) along dim 1."""
    return torch.gather(x, 1, rows.view(*rows.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


class Attention(nn.Module):
    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        widths = (cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim)
        if cfg.fused_qkv:
            self.qkv_proj = nn.Linear(cfg.d_model, sum(widths), bias=cfg.qkv_bias)
        else:
            self.q_proj = nn.Linear(cfg.d_model, widths[0], bias=cfg.qkv_bias)
            self.k_proj = nn.Linear(cfg.d_model, widths[1], bias=cfg.qkv_bias)
            self.v_proj = nn.Linear(cfg.d_model, widths[2], bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=cfg.o_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.widths = widths

    def heads(self, t: Tensor, n: int) -> Tensor:
        """(B, S, n·D) → (B, n, S, D)."""
        return t.view(t.shape[0], t.shape[1], n, self.head_dim).transpose(1, 2)

    def project(self, x: Tensor, rows_of) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """q (B, H, S, D), k (B, Hkv, S, D) of the selected rows, v (B, Hkv, Q, D) of all rows, and the rows.
        rows_of(v) is the view's `select`."""
        if hasattr(self, "qkv_proj"):
            q, k, v = self.qkv_proj(x).split(self.widths, dim=-1)
            v = self.heads(v, self.n_kv_heads)
            rows = rows_of(v)
            if rows is not None:
                q, k = gather_rows(q, rows), gather_rows(k, rows)
            return self.heads(q, self.n_heads), self.heads(k, self.n_kv_heads), v, rows
        v = self.heads(self.v_proj(x), self.n_kv_heads)                                # (B, Hkv, Q, D)
        rows = rows_of(v)                                                              # (B, S) or None
        if rows is not None:
            x = gather_rows(x, rows)
        return self.heads(self.q_proj(x), self.n_heads), self.heads(self.k_proj(x), self.n_kv_heads), v, rows

    def forward(self, x: Tensor, positions: Tensor, rotary: Rotary, view: LayerView) -> tuple[Tensor, Tensor | None]:
        """Attention output (B, S, d) for the rows the view selects (S = Q when it selects none), and those rows."""
        B = x.shape[0]
        q, k, v, rows = self.project(x, view.select)
        if rows is not None:
            positions = gather_rows(positions, rows)
        S = q.shape[2]
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rotary(q, positions), rotary(k, positions)
        keys, values, mask = view.attend_kv(k, v)
        if view.wants_attention:
            out, probs = attend_with_probs(q, keys, values, mask)
            view.observe_attention(q, probs)
        else:
            out = attend(q, keys, values, mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, S, -1)), rows


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ArchConfig, index: int = 0) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        sparse = cfg.moe is not None and index not in cfg.dense_layers
        self.mlp = MoE(cfg.d_model, cfg.moe) if sparse else SwiGLU(cfg.d_model, cfg.ffn_hidden)

    def forward(self, h: Tensor, positions: Tensor, rotary: Rotary, view: LayerView) -> Tensor:
        out, rows = self.attn(self.attn_norm(h), positions, rotary, view)
        h = h + view.attn_out(out)
        return h + view.ffn_out(self.mlp(self.ffn_norm(h if rows is None else gather_rows(h, rows))))


class DecoderLM(nn.Module):
    """Embedding → n pre-norm layers → final norm → LM head, with bidirectional attention by default."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rotary = Rotary(cfg.rotary_dim or cfg.head_dim, cfg.rope_theta, cfg.max_positions)
        self.latent = LatentInput(cfg.latent_features, cfg.d_model) if cfg.latent_features else None

    def forward(self, input_ids: Tensor, positions: Tensor, view: CacheView | None = None,
                logits_at: Tensor | None = None, latent: Tensor | None = None) -> Tensor:
        """input_ids, positions: (B, Q) long. logits_at: (B, N) indices into Q, or None for every row.
        latent: (B,) λ in [0, 1], required by (and only by) a λ-conditioned model (models/latent.py).

        Returns logits (B, N or Q, vocab) in float32. New K/V leave the model only through `view`.
        """
        view = view if view is not None else FullView()
        h = self.embed(input_ids)
        if (latent is None) != (self.latent is None):
            raise ValueError("a λ-conditioned model needs latent=(B,) λ values; other models take none"
                             if latent is None else "latent given to a model that is not λ-conditioned")
        if self.latent is not None:
            h = h + self.latent(latent).to(h.dtype)
        for i, layer in enumerate(self.layers):
            layer_view = view.layer(i)
            h, positions = layer_view.enter(h, positions)
            h = layer(h, positions, self.rotary, layer_view)
        h = view.leave(h)
        if logits_at is not None:
            h = torch.gather(h, 1, logits_at[..., None].expand(-1, -1, h.shape[-1]))
        return self.lm_head(self.norm(h)).float()
