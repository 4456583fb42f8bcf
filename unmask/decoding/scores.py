"""Scores: how confident the model is in the token proposed at each position (higher = more confident)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.decoding.rng import row_uniforms
from unmask.registry import Registry


class Score(ABC):
    """score(logits (B, N, V), tokens (B, N), generators) → (B, N) float; only reads its inputs."""

    def __init__(self, fp64: bool = False, spec=None, logits_eos_inf: bool = False,
                 confidence_eos_eot_inf: bool = False) -> None:
        # Fast-dLLM computes confidences in float64, LLaDA in the logits' dtype; ties between positions
        # can break differently, so the presets that reproduce each pick the same precision.
        self.dtype = torch.float64 if fp64 else torch.float32
        self.excluded = excluded_ids(spec, logits_eos_inf, confidence_eos_eot_inf)

    def probs(self, logits: Tensor) -> Tensor:
        """The distribution scores are read from; LLaDA's EOS options remove their ids from it first."""
        logits = logits.to(self.dtype)
        if self.excluded:
            logits = logits.clone() if logits.dtype == self.dtype else logits
            logits[..., self.excluded] = float("-inf")
        return torch.softmax(logits, dim=-1)

    @abstractmethod
    def __call__(self, logits: Tensor, tokens: Tensor, generators: list[torch.Generator]) -> Tensor: ...


def excluded_ids(spec, logits_eos_inf: bool, confidence_eos_eot_inf: bool) -> list[int]:
    """Token ids LLaDA's generate() sets to -inf before the confidence softmax.

    `logits_eos_inf`: EOS (the spec's first eos id, LLaDA's 126081). `confidence_eos_eot_inf`: EOS and EoT
    (every eos id; LLaDA's 126081 and 126348). LLaDA's code applies the latter through a chained assignment that
    at temperature > 0 only reaches EoT; we apply the intended rule (both) at every temperature.
    """
    if spec is None or not (logits_eos_inf or confidence_eos_eot_inf):
        return []
    ids = list(spec.eos_ids) if confidence_eos_eot_inf else []
    if logits_eos_inf and spec.eos_ids[0] not in ids:
        ids.insert(0, spec.eos_ids[0])
    return ids


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
        return row_uniforms(generators, B, (N,), tokens.device, self.dtype)  # (B, N)
