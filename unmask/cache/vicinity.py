"""dInfer vicinity refresh (arXiv 2510.08666, `VicinityCacheIteration`; §18 of METHODS.md).

DualCache with a wider refresh: each step recomputes the current block plus `vicinity_size` neighbours on
each side, [lo - v, lo + Bl + shift + v) shifted inside the canvas, and writes all of them in place; far
tokens stay cached from the block-start refresh. The first `vicinity_warmup_steps` steps are full forwards.
"""
from __future__ import annotations

from torch import Tensor

from unmask.cache.base import CACHES
from unmask.cache.plan import Canvas
from unmask.cache.windowed import WindowedKVCache
from unmask.decoding.state import DecodeState
from unmask.models.spec import DiffusionSpec


@CACHES.register("vicinity")
class VicinityCache(WindowedKVCache):
    """Refresh a window of neighbours around the block every step; the rest at block starts."""

    caches_suffix = True

    def __init__(self, block_length: int, spec: DiffusionSpec | None = None, cache_update_freq: int | None = None,
                 vicinity_size: int = 16, vicinity_warmup_steps: int = 4) -> None:
        super().__init__(block_length, spec, cache_update_freq)
        self.vicinity_size, self.warmup = vicinity_size, vicinity_warmup_steps

    def width(self, length: int) -> int:
        return min(length, self.block_length + self.dims[2] + 2 * self.vicinity_size)

    def span(self, lo: Tensor, length: int) -> tuple[Tensor, Tensor]:
        q = self.width(length)
        first = (lo - self.vicinity_size).clamp(0, length - q)
        return first, first + q

    def span_length(self, canvas: Canvas) -> int:
        return self.width(canvas.key_mask.shape[1])

    def forced(self, state: DecodeState) -> list[bool]:
        return [step < self.warmup or f for step, f in zip(state.row_steps, super().forced(state))]
