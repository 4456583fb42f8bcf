"""Caches: plan each forward (what to compute, what to reuse) and update after it."""
from unmask.cache import delayed, dual, none, prefix, vicinity  # noqa: F401  (registers)
from unmask.cache import adaptive, feature  # noqa: F401  (registers feature, d2, elastic)
from unmask.cache import elastic  # noqa: F401  (registers elastic)
from unmask.cache import block_causal  # noqa: F401  (registers block-causal)
from unmask.cache.base import CACHES, Cache
from unmask.cache.plan import Canvas, Plan

__all__ = ["CACHES", "Cache", "Canvas", "Plan"]
