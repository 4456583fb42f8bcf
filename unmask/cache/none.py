"""No cache: every step recomputes the whole sequence. The reference every other cache is tested against."""
from __future__ import annotations

from torch import Tensor

from unmask.cache.base import CACHES, Cache, full_plan
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.models.cache_view import FullView


@CACHES.register("none")
class NoCache(Cache):
    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        return full_plan(canvas, state, FullView(canvas.key_mask))
