"""Gemma-4-family building blocks used by DiffusionGemma: its RMSNorm, per-layer-type RoPE (default and
proportional partial), the gated GELU MLP, and the MoE router and experts.

They differ from `layers.py` in small numeric ways that matter for parity: the norm multiplies by its
weight (not 1 + weight) after x·(mean(x²) + eps)^-0.5 in float32, and may have no weight at all.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ACTIVATIONS = {"gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"), "gelu": F.gelu}


class GemmaNorm(nn.Module):
    """RMSNorm computed in float32, with or without a learned scale."""

    def __init__(self, dim: int, eps: float, with_scale: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if with_scale else None

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        out = x32 * torch.pow(x32.pow(2).mean(-1, keepdim=True) + self.eps, -0.5)
        if self.weight is not None:
            out = out * self.weight.float()
        return out.to(x.dtype)


def inverse_frequencies(head_dim: int, theta: float, rotary_fraction: float = 1.0, factor: float = 1.0,
                        proportional: bool = False) -> Tensor:
    """(head_dim / 2,) float32 inverse frequencies. Proportional RoPE rotates the first
    int(fraction·head_dim/2) frequency pairs with exponents over the whole head_dim and leaves the rest
    unrotated (frequency 0); default RoPE rotates every pair."""
    if not proportional:
        return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = int(rotary_fraction * head_dim // 2)
    rotated = 1.0 / theta ** (torch.arange(0, 2 * angles, 2, dtype=torch.float32) / head_dim)
    return torch.cat([rotated, torch.zeros(head_dim // 2 - angles)]) / factor


def rotate(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """Rotate-half RoPE. x: (B, Q, H, D); positions: (B, Q); angles in float32, result in x's dtype."""
    freqs = positions[..., None].float() * inv_freq.to(x.device)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos().to(x.dtype)[:, :, None], emb.sin().to(x.dtype)[:, :, None]
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class GatedMLP(nn.Module):
    """down(act(gate(x)) · up(x))."""

    def __init__(self, dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    """Top-k expert choice: unscaled norm · scale · d^-½ → linear → softmax (float32) → top-k, renormalised,
    times a learned per-expert scale."""

    def __init__(self, dim: int, n_experts: int, top_k: int, eps: float) -> None:
        super().__init__()
        self.top_k, self.root = top_k, dim ** -0.5
        self.norm = GemmaNorm(dim, eps, with_scale=False)
        self.proj = nn.Linear(dim, n_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(dim))
        self.per_expert_scale = nn.Parameter(torch.ones(n_experts))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, d) → weights (N, k), expert indices (N, k)."""
        probs = self.proj(self.norm(x) * self.scale * self.root).softmax(-1, dtype=torch.float32)
        weights, index = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        return weights * self.per_expert_scale[index], index


class Experts(nn.Module):
    """E gated-GELU experts stored as 3-D tensors (gate and up fused), applied to the tokens routed to each."""

    def __init__(self, dim: int, hidden: int, n_experts: int, activation: str) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(n_experts, 2 * hidden, dim))
        self.down_proj = nn.Parameter(torch.empty(n_experts, dim, hidden))
        self.act = ACTIVATIONS[activation]

    def forward(self, x: Tensor, weights: Tensor, index: Tensor) -> Tensor:
        """x: (N, d); weights, index: (N, k) → (N, d), the weighted sum of each token's experts."""
        out = torch.zeros_like(x)
        for expert in index.unique().tolist():
            token, slot = torch.where(index == expert)
            gate, up = F.linear(x[token], self.gate_up_proj[expert]).chunk(2, dim=-1)
            y = F.linear(self.act(gate) * up, self.down_proj[expert]) * weights[token, slot, None]
            out.index_add_(0, token, y.to(out.dtype))
        return out
