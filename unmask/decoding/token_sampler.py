"""Token samplers: logits → the token proposed at each position (argmax, or Gumbel-max with temperature)."""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.rng import row_uniforms


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits per position, the rest -inf. logits: (..., V)."""
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of tokens whose probability reaches p (always the top one)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cumulative > p
    drop_sorted[..., 1:] = drop_sorted[..., :-1].clone()  # shift right: keep the token that crosses p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class TokenSampler:
    """Proposes one token per position; deterministic given the per-row generators, independent across rows.

    temperature 0 → argmax. temperature T > 0 → LLaDA's Gumbel-max, argmax(exp(l) / (-log u)^T) in float64
    with u ~ U(0, 1) drawn from each row's own generator. `banned` ids (the mask id) are never proposed.
    """

    def __init__(self, temperature: float = 0.0, top_p: float | None = None, top_k: int | None = None,
                 banned: tuple[int, ...] = ()) -> None:
        self.temperature, self.top_p, self.top_k, self.banned = temperature, top_p, top_k, list(banned)

    @classmethod
    def from_config(cls, cfg, spec) -> "TokenSampler":
        """The sampler of a DecodeConfig for a model's DiffusionSpec: never the mask id; with LLaDA's
        `logits_eos_inf`, never EOS either (the spec's first eos id, LLaDA's 126081, set to -inf)."""
        banned = (spec.mask_id,) + ((spec.eos_ids[0],) if getattr(cfg, "logits_eos_inf", False) else ())
        return cls(cfg.temperature, cfg.top_p, cfg.top_k, banned=banned)

    def filtered(self, logits: Tensor) -> Tensor:
        """The logits a token is drawn from: banned ids, top-k and top-p removed. (B, N, V)."""
        if self.banned:
            logits = logits.clone()
            logits[..., self.banned] = float("-inf")
        if self.top_k is not None:
            logits = top_k_filter(logits, self.top_k)
        if self.top_p is not None and self.top_p < 1.0:
            logits = top_p_filter(logits, self.top_p)
        return logits

    def __call__(self, logits: Tensor, generators: list[torch.Generator]) -> Tensor:
        """logits: (B, N, V) → tokens (B, N) long."""
        logits = self.filtered(logits)
        if self.temperature == 0.0:
            return logits.argmax(-1)
        noise = row_uniforms(generators, logits.shape[0], tuple(logits.shape[1:]), logits.device)   # (B, N, V)
        return (logits.double().exp() / (-torch.log(noise)) ** self.temperature).argmax(-1)
