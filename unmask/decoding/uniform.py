"""Uniform corruption (DiffusionGemma): a canvas starts as random tokens; each step samples a proposal from the
temperature-scaled logits, accepts the lowest-entropy positions under an entropy bound, and renoises every
other position with fresh random tokens. A canvas stops when its argmax is stable and confident.

Every random draw comes from the row's own generator, in the order and shapes the reference
(transformers' `DiffusionGemmaForBlockDiffusion.generate`) draws them at batch 1: the canvas (1, C) with
`randint` at a canvas's start; each step a `multinomial` over (C, V) and then a `randint` (1, C) renoise.
Nothing here knows the model or the engine.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.errors import ConfigError

# DecodeConfig fields the uniform family ignores or cannot honour → why (checked before a request is queued)
REFUSED = {
    "steps": (None, "steps is the quota of mask models; a canvas takes at most canvas_steps steps"),
    "cache": ("none", "the prompt's encoder K/V cache is built into the encoder–canvas layout; the canvas is "
              "recomputed every step, so mask-model caches have nothing to reuse"),
    "remask": ("none", "uniform corruption renoises every rejected position each step instead of remasking"),
    "logits_fusion": ("none", "logits fusion is defined on masked positions"),
    "cfg_scale": (0.0, "classifier-free guidance needs a [MASK] token for its unconditional prompt"),
    "temperature": (0.0, "the temperature follows the linear schedule from t_max to t_min"),
    "top_p": (None, "the reference samples from the full temperature-scaled distribution"),
    "top_k": (None, "the reference samples from the full temperature-scaled distribution"),
    "alg_temp": (None, "positions are accepted by the entropy bound, not sampled"),
    "logits_eos_inf": (False, "EOS is handled at the canvas's end, as the reference does"),
    "confidence_eos_eot_inf": (False, "EOS is handled at the canvas's end, as the reference does"),
    "eotp": (False, "End-of-Text Prediction fills masked padding; a canvas stops at EOS by itself"),
}


def check_uniform_config(cfg, canvas_length: int) -> None:
    """ConfigError naming the field when `cfg` asks for something uniform corruption cannot do."""
    if cfg.commit != "eb":
        raise ConfigError(f"commit {cfg.commit!r} does not apply to a uniform-corruption model (DiffusionGemma): "
                          f"it has no [MASK] positions to commit; it accepts tokens by the entropy bound, "
                          f"commit 'eb' with eb_gamma (preset diffusion-gemma)")
    for name, (allowed, why) in REFUSED.items():
        if getattr(cfg, name) != allowed:
            raise ConfigError(f"{name}={getattr(cfg, name)!r} is not supported with a uniform-corruption model "
                              f"(DiffusionGemma): {why}; leave it at {allowed!r}")
    if cfg.block_length is not None and cfg.block_length != canvas_length:
        raise ConfigError(f"block_length={cfg.block_length} but this model denoises canvases of {canvas_length} "
                          f"tokens; leave block_length unset")
    if cfg.t_max <= cfg.t_min:
        raise ConfigError(f"t_max ({cfg.t_max}) must be greater than t_min ({cfg.t_min})")


def temperatures(remaining: Tensor, total: int, t_min: float, t_max: float) -> Tensor:
    """Linear schedule, per row: t_min + (t_max − t_min)·n/N at a step with n of N steps remaining (N..1)."""
    return t_min + (t_max - t_min) * (remaining.to(torch.float32) / total)


def entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of softmax(logits) over the last dim, computed as torch.distributions.Categorical does."""
    log_p = logits - logits.logsumexp(-1, keepdim=True)
    return -(log_p.clamp(min=torch.finfo(log_p.dtype).min) * log_p.softmax(-1)).sum(-1)


def entropy_bound_accept(token_entropy: Tensor, bound: float) -> Tensor:
    """(B, C) bool from per-position entropies (B, C) of the step's logits: sort positions by entropy; accept the
    prefix whose Σ H − max H (the sum of all but the largest) stays ≤ bound (EB-Sampler, arXiv 2505.24857).
    The lowest-entropy position is always accepted."""
    ordered, order = token_entropy.sort(-1)
    keep = ordered.cumsum(-1) - ordered <= bound
    return torch.zeros_like(keep).scatter(-1, order, keep)


def random_canvas(generators: list[torch.Generator], length: int, vocab: int, device: torch.device) -> Tensor:
    """(B, length) uniform random tokens, row b from generators[b] (shape (1, length) per row, as the reference)."""
    return torch.cat([torch.randint(0, vocab, (1, length), generator=g, device=g.device) for g in generators]).to(device)


def sample_proposals(probs: Tensor, generators: list[torch.Generator]) -> Tensor:
    """(B, C) tokens, row b drawn by `multinomial` over its (C, V) probabilities with generators[b]."""
    return torch.stack([torch.multinomial(p, 1, generator=g).squeeze(-1) for p, g in zip(probs, generators)])


class StableAndConfident:
    """Adaptive stop per row: the argmax canvas equals each of the last `stability` ones (0: always stable)
    and the mean entropy of the temperature-scaled logits is below `confidence`. `history` (B, S, C) is the
    rows' recent argmax canvases (−1 before any), kept by the caller so rows can join and leave."""

    def __init__(self, stability: int, confidence: float) -> None:
        self.stability, self.confidence = stability, confidence

    def fresh_history(self, batch: int, length: int, device: torch.device) -> Tensor:
        return torch.full((batch, self.stability, length), -1, dtype=torch.long, device=device)

    def __call__(self, argmax: Tensor, token_entropy: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) bool stop from the argmax canvas (B, C) and the per-position entropies (B, C) of the
        temperature-scaled logits, and the history with `argmax` appended (the oldest dropped)."""
        stable = (history == argmax[:, None]).all(-1).all(-1)
        if self.stability:
            history = torch.cat([history[:, 1:], argmax[:, None]], 1)
        confident = token_entropy.mean(-1) < self.confidence
        return stable & confident, history
