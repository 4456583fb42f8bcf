"""Remask rules: which committed positions to reopen after a step (none yet beyond the interface)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.decoding.state import DecodeState
from unmask.registry import Registry


class RemaskPolicy(ABC):
    @abstractmethod
    def select(self, scores: Tensor, state: DecodeState) -> Tensor:
        """scores: (B, G) → (B, G) bool, a subset of committed positions to turn back into [MASK]."""


REMASK: Registry[type[RemaskPolicy]] = Registry("remask rule")


@REMASK.register("none")
class NoRemask(RemaskPolicy):
    """Committed tokens are final (LLaDA, Dream, Fast-dLLM)."""

    def select(self, scores: Tensor, state: DecodeState) -> Tensor:
        return torch.zeros_like(state.is_masked)
