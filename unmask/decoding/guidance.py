"""Guidance: extra copies of every row in the step's forward, whose logits reshape the main rows' logits.

A guidance object says how its copy of a row differs (`variant`: the prompt and generated tokens it feeds
the model) and how the two sets of logits combine (`combine`). The engine runs the main rows and the copies
as one batched forward, counts one NFE per step (the papers' convention) and reports the model rows it
cost (`Completion.model_rows`). A verifier model fits the same slot: its `combine` sees the main logits
and its own (from a second model, run by the engine on the same rows).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor


class Guidance(ABC):
    @abstractmethod
    def variant(self, prompt: Tensor, prompt_real: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """The (prompt (B, P), generated tokens (B, G)) the extra copy of each row feeds the model.
        prompt_real: (B, P) bool, False on left padding."""

    @abstractmethod
    def combine(self, main: Tensor, extra: Tensor) -> Tensor:
        """Logits the step samples and scores from. main, extra: (B, N, V) at the same positions."""


class ClassifierFreeGuidance(Guidance):
    """LLaDA's classifier-free guidance (`generate.py`, cfg_scale): the unconditional copy has every prompt
    token replaced by [MASK] (padding stays padding); logits = un + (s + 1)(cond − un)."""

    def __init__(self, cfg_scale: float, mask_id: int) -> None:
        self.scale, self.mask_id = cfg_scale, mask_id

    def variant(self, prompt: Tensor, prompt_real: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        return torch.where(prompt_real, torch.full_like(prompt, self.mask_id), prompt), tokens

    def combine(self, main: Tensor, extra: Tensor) -> Tensor:
        return extra + (self.scale + 1) * (main - extra)
