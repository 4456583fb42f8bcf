"""Building blocks shared by every architecture: RMSNorm, rotary embedding, SwiGLU MLP."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class RMSNorm(nn.Module):
    """x / rms(x) * weight, normalised in float32 as LLaDA and Qwen2 both do."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Rotary(nn.Module):
    """Rotate-half RoPE with a precomputed float32 cos/sin table indexed by per-token positions."""

    def __init__(self, head_dim: int, theta: float, max_positions: int) -> None:
        super().__init__()
        self.head_dim, self.theta, self.max_positions = head_dim, theta, max_positions
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)
        self.build_tables()

    def build_tables(self, device: torch.device | str | None = None) -> None:
        """(Re)compute the tables; called again after loading weights onto a device from `meta`."""
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim))
        freqs = torch.outer(torch.arange(self.max_positions, device=device, dtype=torch.float32), inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)  # (max_positions, head_dim)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: (B, H, Q, D); positions: (B, Q) long. Rotation in float32, result in x's dtype. With D larger than
        the table's head_dim (partial rotary, LLaDA2) only the first head_dim dims rotate."""
        if x.shape[-1] > self.head_dim:
            r = self.head_dim
            return torch.cat([self(x[..., :r], positions), x[..., r:]], dim=-1)
        cos = self.cos[positions][:, None]  # (B, 1, Q, D)
        sin = self.sin[positions][:, None]
        x32 = x.float()
        x1, x2 = x32.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return (x32 * cos + rotated * sin).to(x.dtype)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); LLaDA calls these ff_proj / up_proj / ff_out."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "gate_up_proj"):   # fused at load (models/fused.py)
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(F.silu(gate) * up)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
