"""The seam between a model and a cache: per layer, which keys/values to attend over, plus output taps.

A model writes fresh K/V only through `LayerView.attend_kv`; a cache subclasses these base classes to reuse
K/V (or whole layer outputs) across denoising steps. The layer loop calls every hook unconditionally; the
base class hooks do nothing, so a cache overrides only what it uses. `FullView` is the no-cache view.
"""
from __future__ import annotations

import torch
from torch import Tensor


class LayerView:
    """One layer's view of one forward. Every hook but `attend_kv` defaults to a no-op.

    * `select(v) -> rows | None`: v (B, H_kv, Q, D) the layer's fresh values for all Q rows (computed first).
      rows (B, S) long indices into Q: only those rows get Q/K projections, attention and the FFN. Then
      `attend_kv` receives k of the S rows and v of all Q rows and returns a mask (B, 1, S or 1, K);
      `attn_out` and `ffn_out` receive S rows and must return all Q rows (the cached ones substituted).
      None (the default) computes every row.
    * `wants_attention` and `observe_attention(q, probs)`: when True the layer uses eager attention and
      hands over q (B, H, S, D) and the probabilities (B, H, S, K) float32 (0 on masked keys).
    * `enter(h, positions) -> (h, positions)`: called with each layer's input (B, Q, d), (B, Q); may record it
      or replace the rows (e.g. widen to the whole canvas from cached layer inputs).
    """

    wants_attention: bool = False

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Take this layer's fresh keys/values for the computed positions and return what to attend over.

        k, v: (B, H_kv, Q, D), keys already rotated at their own positions.
        Returns (keys (B, H_kv, K, D), values (B, H_kv, K, D), mask (B, 1, Q or 1, K) bool, True = attend, or None).
        """
        raise NotImplementedError

    def select(self, v: Tensor) -> Tensor | None:
        return None

    def observe_attention(self, q: Tensor, probs: Tensor) -> None:
        """Receives the attention probabilities when `wants_attention` is True."""

    def enter(self, h: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        return h, positions

    def attn_out(self, out: Tensor) -> Tensor:
        """Tap on the attention output after the output projection, (B, Q, d_model); may substitute cached rows."""
        return out

    def ffn_out(self, out: Tensor) -> Tensor:
        """Tap on the FFN output, (B, Q, d_model); may substitute cached rows."""
        return out


class CacheView:
    """One forward's view: a LayerView per layer, and `leave` after the last layer."""

    def layer(self, index: int) -> LayerView:
        raise NotImplementedError

    def leave(self, h: Tensor) -> Tensor:
        """Called after the last layer, before `logits_at`; must return rows that `logits_at` indexes."""
        return h


class FullView(CacheView, LayerView):
    """No cache: attend over exactly the computed positions, hiding padded keys."""

    def __init__(self, key_mask: Tensor | None = None) -> None:
        # key_mask: (B, Q) bool, False for left-padding that no query may attend to.
        self.mask = None if key_mask is None else key_mask[:, None, None, :]

    def layer(self, index: int) -> "FullView":
        return self

    def attend_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        return k, v, self.mask


class MaskView(FullView):
    """No cache, any attention pattern: attend over exactly the computed positions under a fixed mask."""

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask  # (B, 1, Q or 1, K) bool, True = attend


def positions_from_mask(key_mask: Tensor) -> Tensor:
    """Position ids for a left-padded batch: 0 at each row's first real token, (B, L) long."""
    return (key_mask.long().cumsum(-1) - 1).clamp(min=0)


__all__ = ["CacheView", "FullView", "LayerView", "MaskView", "positions_from_mask", "torch"]
