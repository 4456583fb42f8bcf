"""The one attention entry point; SDPA is the reference implementation on every device."""
from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None = None) -> Tensor:
    """Scaled dot-product attention with grouped K/V heads.

    q: (B, H, Q, D); k, v: (B, H_kv, K, D) with H % H_kv == 0; mask: (B, 1, Q or 1, K) bool, True = attend.
    scale: the score multiplier, default D^-½ (DiffusionGemma normalises q and k and uses 1).
    Returns (B, H, Q, D).
    """
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def attend_with_probs(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Eager attention that also returns the probabilities, for caches that read attention weights.

    Same shapes as `attend`; probs: (B, H, Q, K) float32, 0 on masked keys.
    """
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, Q, K)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(-1)
    return (probs.to(v.dtype) @ v), probs
