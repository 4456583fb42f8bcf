"""Scores: how confident the model is in the token proposed at each position (higher = more confident)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.registry import Registry


class Score(ABC):
    """score(logits (B, N, V), tokens (B, N), generators) → (B, N) float; only reads its inputs."""

    def __init__(self, fp64: bool = False) -> None:
        # Fast-dLLM computes confidences in float64, LLaDA in the logits' dtype; ties between positions
        # can break differently, so the presets that reproduce each pick the same precision.
        self.dtype = torch.float64 if fp64 else torch.float32

    def probs(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.to(self.dtype), dim=-1)

    @abstractmethod
    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor: ...


SCORES: Registry[type[Score]] = Registry("score (alg)")
ALG_ALIASES = {"low_confidence": "confidence", "maskgit_plus": "confidence", "topk_margin": "margin",
               "neg-entropy": "entropy"}  # the reference implementations' names for the same scores


@SCORES.register("confidence")
class TopProbability(Score):
    """Probability of the proposed token (LLaDA `low_confidence`, Dream `maskgit_plus`)."""

    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor:
        return self.probs(logits).gather(-1, tokens[..., None]).squeeze(-1)  # (B, N)


@SCORES.register("margin")
class Margin(Score):
    """Top-1 minus top-2 probability (Dream `topk_margin`)."""

    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor:
        top2 = self.probs(logits).topk(2, dim=-1).values  # (B, N, 2)
        return top2[..., 0] - top2[..., 1]


@SCORES.register("entropy")
class NegativeEntropy(Score):
    """Σ p log p over the vocabulary (Dream `entropy`; the epsilon is Dream's)."""

    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor:
        p = self.probs(logits)
        return (p * torch.log(p + 1e-10)).sum(-1)  # (B, N)


@SCORES.register("random")
class RandomScore(Score):
    """Uniform noise from each row's own generator (LLaDA `random` remasking): a random decoding order."""

    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor:
        B, N = tokens.shape
        rows = [torch.rand(N, generator=g, device=g.device, dtype=self.dtype) for g in generators[:B]]
        return torch.stack(rows).to(tokens.device)  # (B, N)
