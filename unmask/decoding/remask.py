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

    def final_length(self, state: DecodeState) -> Tensor:
        """(B,) leading generated tokens that can never change again (streaming sends exactly these).

        Default: committed tokens are never reopened, so the committed prefix left of the first mask is final.
        A rule that reopens committed tokens returns a shorter prefix (e.g. left of every reopen-able position).
        """
        return state.final_length()


REMASK: Registry[type[RemaskPolicy]] = Registry("remask rule")


@REMASK.register("none")
class NoRemask(RemaskPolicy):
    """Committed tokens are final (LLaDA, Dream, Fast-dLLM)."""

    def select(self, scores: Tensor, state: DecodeState) -> Tensor:
        return torch.zeros_like(state.is_masked)
