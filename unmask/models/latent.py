"""λ-conditioning (Di4C, arXiv 2410.08709): a latent λ ∈ [0, 1] per row as an extra input of the model.

A λ-conditioned checkpoint says so in config.json, `"latent_conditioning": {"features": n}`, and holds one more
linear map, `model.transformer.latent_proj.{weight,bias}` ((d_model, 2n), (d_model,)). The model adds
proj(sin/cos features of λ) to every token embedding of the row. Which λ a row gets is not the model's business:
the decoding side draws it (one per row per step, from the row's generator) and passes it as `latent`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

MAX_FEATURES = 1024
CHECKPOINT_NAMES = {"model.transformer.latent_proj.weight": "latent.proj.weight",
                    "model.transformer.latent_proj.bias": "latent.proj.bias"}


def latent_features(lam: Tensor, n: int) -> Tensor:
    """(N,) λ in [0, 1] → (N, 2n) sin/cos features at frequencies π·1 … π·n."""
    angles = lam[:, None] * torch.arange(1, n + 1, device=lam.device, dtype=lam.dtype) * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LatentInput(nn.Module):
    """λ (B,) → the (B, 1, d_model) shift added to every token embedding of each row."""

    def __init__(self, n_features: int, d_model: int) -> None:
        super().__init__()
        self.n_features = n_features
        self.proj = nn.Linear(2 * n_features, d_model)

    def forward(self, lam: Tensor) -> Tensor:
        return self.proj(latent_features(lam.to(self.proj.weight.dtype), self.n_features))[:, None, :]


def latent_features_key(cfg: dict[str, Any]) -> int | None:
    """config.json "latent_conditioning" → its number of λ features, or None when absent; ValueError naming
    the problem when it is malformed."""
    value = cfg.get("latent_conditioning")
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"features"}:
        raise ValueError(f"latent_conditioning must be an object {{\"features\": n}}, got {str(value)[:60]}")
    n = value["features"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FEATURES:
        raise ValueError(f"latent_conditioning.features must be an integer in [1, {MAX_FEATURES}], got {n!r}")
    return n
