"""Fast-dLLM DualCache (arXiv 2505.22618, §3.2 of METHODS.md).

As PrefixCache, but the masked suffix's K/V are cached too (frozen from the block-start refresh): a step
computes only the current block [P + s, P + e) (plus position P + s - 1 for Dream's shift, whose hidden state
predicts the block's first token) and writes the block's fresh K/V in place, per row.
"""
from __future__ import annotations

from torch import Tensor

from unmask.cache.base import CACHES
from unmask.cache.plan import Canvas
from unmask.cache.windowed import WindowedKVCache


@CACHES.register("dual")
class DualCache(WindowedKVCache):
    """Reuse prefix and suffix K/V; recompute only the current block each step."""

    caches_suffix = True

    def span(self, lo: Tensor, length: int) -> tuple[Tensor, Tensor]:
        q = self.block_length + self.dims[2]
        return lo, lo + q

    def span_length(self, canvas: Canvas) -> int:
        return self.block_length + canvas.logit_shift
