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
from unmask.errors import ConfigError


@CACHES.register("dual")
class DualCache(WindowedKVCache):
    """Reuse prefix and suffix K/V; recompute only the current block each step."""

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.num_windows < 2:
            raise ConfigError(f"cache {cfg.cache!r} caches the masked suffix after the current block, but with one "
                              f"block (block_length {cfg.window_length} = gen_length {cfg.gen_length}) there is no "
                              f"suffix; set block_length < gen_length or use cache='prefix'")

    def span(self, lo: Tensor, length: int) -> tuple[Tensor, Tensor]:
        q = self.block_length + self.dims[2]
        return lo, lo + q

    def span_length(self, canvas: Canvas) -> int:
        return self.block_length + canvas.logit_shift
