"""The one attention entry point; SDPA is the reference implementation on every device."""
from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Scaled dot-product attention with grouped K/V heads.

    q: (B, H, Q, D); k, v: (B, H_kv, K, D) with H % H_kv == 0; mask: (B, 1, Q or 1, K) bool, True = attend.
    Returns (B, H, Q, D).
    """
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
