"""No cache: every step recomputes the whole sequence. The reference every other cache is tested against."""
from __future__ import annotations

from torch import Tensor

from unmask.cache.base import CACHES, Cache, full_plan
from unmask.cache.plan import Canvas, Plan
from unmask.decoding.state import DecodeState
from unmask.cache.kv_store import MaskView, attention_mask
from unmask.models.cache_view import FullView
from unmask.models.spec import DiffusionSpec


@CACHES.register("none")
class NoCache(Cache):
    """Full forward each step, under the model's attention pattern (full or block-causal, see kv_store)."""

    uniform_cost = True
    supports_remask = True

    def __init__(self, spec: DiffusionSpec | None = None) -> None:
        self.attention = spec.attention if spec is not None else "full"

    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        if self.attention == "full":
            return full_plan(canvas, state, FullView(canvas.key_mask))
        return full_plan(canvas, state, MaskView(attention_mask(canvas.key_mask, None, self.attention,
                                                                  canvas.positions)))
