"""Fast-dLLM PrefixCache (arXiv 2505.22618, §3.2 of METHODS.md).

At each block start a full forward refreshes every K/V and also decodes (no extra NFE); every other step
computes the current block and the whole suffix after it, [P + s - shift, L), against the cached K/V of the
prefix. With one block (block_length = gen_length) only the prompt is reused.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache.base import CACHES
from unmask.cache.windowed import WindowedKVCache


@CACHES.register("prefix")
class PrefixCache(WindowedKVCache):
    """Reuse the prefix before the current block; recompute the block and everything after it."""

    def span(self, lo: Tensor, length: int) -> tuple[Tensor, Tensor]:
        return lo, torch.full_like(lo, length)
