"""Caches: plan each forward (what to compute, what to reuse) and update after it."""
from unmask.cache import none  # noqa: F401  (registers)
from unmask.cache.base import CACHES, Cache
from unmask.cache.plan import Canvas, Plan

__all__ = ["CACHES", "Cache", "Canvas", "Plan"]
