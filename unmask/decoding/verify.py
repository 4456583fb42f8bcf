"""Acceptance rules of AR-verified decoding: the dLLM drafts the next K masked positions left to right, a causal
model reads the draft, and the rule decides how many tokens to write and which. Pure tensor code: the engine
(engine/verify.py) runs both models and writes the verdict.

Shapes: dLLM logits (B, K, V) at the draft positions t..t+K-1 of each row (t = its first masked position),
AR logits (B, K + 1, V) predicting positions t..t+K, length (B,) long = the row's real draft positions (≤ K;
the rest are padding, never accepted). A verdict writes tokens[:, :count] at t, t+1, … (count ≥ 1 per row
with length ≥ 1).

* `apd` (APD, arXiv 2506.00413, danielmisrael/apd `apd_sample`): the draft is sampled from the dLLM with one
  fixed Gumbel noise r; the target is sampled from R·logit_dLLM + (1 − R)·logit_AR with the SAME r; accept the
  longest prefix where draft == target, the first token always. temperature 0: both are argmaxes.
  `apd_correct` (not in the paper): at the first position where they disagree, the TARGET's token is written
  too (its logits are already there: no extra forward), as speculative decoding's correction token; so the
  first token is the target's, never the dLLM's alone. A fully agreeing draft gains nothing.
* `specdiff` (SpecDiff, arXiv 2408.05636): greedy, accept the prefix where the AR argmax equals the draft and
  write the AR's own token at the first mismatch (or after a fully accepted draft: its next token). With
  temperature T: standard speculative sampling, draft x_i ~ q_i = softmax(l_dLLM/T) accepted with probability
  min(1, p_i(x_i)/q_i(x_i)), p_i = softmax(l_AR/T); the first rejection is replaced by a draw from
  norm(max(p_i − q_i, 0)), a fully accepted draft gains a draw from p_K.
* `guided` (FreeCache guided diffusion, arXiv 2505.21467, deterministic mode): the dLLM's greedy draft, the
  longest prefix where AR argmax == draft, the first mismatch replaced by the AR token (and the AR's next token
  after a fully accepted draft). The same verdict as greedy `specdiff`; the preset differs (whole block drafted,
  clean-prefix KV cache). FreeCache's looser acceptance modes (`guided_accept`): `threshold` also accepts a draft
  token whose AR probability is ≥ `guided_threshold`, `topk` one within the AR's `guided_top_k` most likely
  tokens; a rejected token is replaced by the AR argmax (the reference samples the AR distribution without the
  draft token in threshold mode; greedy here). Neither is lossless.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from unmask.decoding.rng import row_uniforms
from unmask.errors import ConfigError
from unmask.registry import Registry


@dataclass
class Verdict:
    tokens: Tensor   # (B, K + 1) long: write tokens[:, :count] at t, t + 1, …
    count: Tensor    # (B,) long


def leading_true(flags: Tensor, length: Tensor) -> Tensor:
    """(B,) how many leading columns of flags (B, K) are True, counting only the first length[b] columns."""
    inside = torch.arange(flags.shape[1], device=flags.device)[None, :] < length[:, None]
    return (flags & inside).long().cumprod(-1).sum(-1)


def gumbel_argmax(logits: Tensor, noise: Tensor, temperature: float) -> Tensor:
    """LLaDA's Gumbel-max in float64, argmax(exp(l) / (−log u)^T) taken in log space; T = 0: argmax."""
    if temperature == 0.0:
        return logits.argmax(-1)
    return (logits.double() - temperature * torch.log(-torch.log(noise))).argmax(-1)


def splice(draft: Tensor, replacement: Tensor, accepted: Tensor) -> Verdict:
    """Accept draft[:, :a] and write replacement (B,) at column a: K + 1 columns, count a + 1."""
    B, K = draft.shape
    padded = torch.cat([draft, draft[:, :1]], 1)                                    # (B, K + 1)
    column = torch.arange(K + 1, device=draft.device)[None, :]
    tokens = torch.where(column == accepted[:, None], replacement[:, None], padded)
    return Verdict(tokens, accepted + 1)


class VerifyRule:
    """A rule: `draft` proposes the tokens the AR model reads, `accept` rules on them (the AR forward also reads
    the draft's last token, so a rule may write the AR's next token after a fully accepted draft)."""

    def __init__(self, temperature: float = 0.0) -> None:
        self.temperature = temperature

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """ConfigError for knobs the rule cannot honour (called from config_checks)."""

    def draft(self, logits: Tensor, generators: list[torch.Generator] | None) -> tuple[Tensor, Any]:
        """logits (B, K, V) with banned ids at -inf → (draft tokens (B, K), context for `accept`)."""
        return logits.argmax(-1), None

    def accept(self, draft: Tensor, context: Any, dllm_logits: Tensor, ar_logits: Tensor, length: Tensor,
               generators: list[torch.Generator] | None) -> Verdict:
        raise NotImplementedError


VERIFY: Registry[type[VerifyRule]] = Registry("verify rule")


@VERIFY.register("apd")
class AdaptiveParallelDecoding(VerifyRule):
    def __init__(self, temperature: float = 0.0, apd_mixture_weight: float = 0.7, apd_correct: bool = False) -> None:
        super().__init__(temperature)
        self.R, self.correct = apd_mixture_weight, apd_correct

    def draft(self, logits: Tensor, generators: list[torch.Generator] | None) -> tuple[Tensor, Any]:
        noise = None
        if self.temperature > 0:
            noise = row_uniforms(generators, logits.shape[0], tuple(logits.shape[1:]), logits.device)
        return gumbel_argmax(logits, noise, self.temperature), noise

    def target(self, dllm_logits: Tensor, ar_logits: Tensor) -> Tensor:
        """The product-of-experts logits R·l_dLLM + (1 − R)·l_AR; ids either bans (-inf) stay -inf."""
        banned = torch.isneginf(dllm_logits) | torch.isneginf(ar_logits)
        mixed = self.R * dllm_logits.masked_fill(banned, 0.0) + (1 - self.R) * ar_logits.masked_fill(banned, 0.0)
        return mixed.masked_fill(banned, float("-inf"))

    def accept(self, draft, noise, dllm_logits, ar_logits, length, generators) -> Verdict:
        target = gumbel_argmax(self.target(dllm_logits, ar_logits[:, :-1]), noise, self.temperature)   # (B, K)
        agreed = leading_true(draft == target, length)
        if self.correct:   # the target's token at the first disagreement (none after a fully agreeing draft)
            verdict = splice(draft, target.gather(1, agreed.clamp(max=draft.shape[1] - 1)[:, None])[:, 0], agreed)
            return Verdict(verdict.tokens, torch.minimum(verdict.count, length.clamp(min=1)))
        tokens = torch.cat([draft, draft[:, :1]], 1)
        return Verdict(tokens, torch.minimum(agreed.clamp(min=1), length.clamp(min=1)))


@VERIFY.register("specdiff")
class SpeculativeDiffusion(VerifyRule):
    def draft(self, logits: Tensor, generators: list[torch.Generator] | None) -> tuple[Tensor, Any]:
        if self.temperature == 0:
            return logits.argmax(-1), None
        noise = row_uniforms(generators, logits.shape[0], tuple(logits.shape[1:]), logits.device)
        return gumbel_argmax(logits, noise, self.temperature), None

    def accept(self, draft, context, dllm_logits, ar_logits, length, generators) -> Verdict:
        ar_best = ar_logits.argmax(-1)                                                # (B, K + 1)
        if self.temperature == 0:
            accepted = leading_true(draft == ar_best[:, :-1], length)
            return splice(draft, ar_best.gather(1, accepted[:, None])[:, 0], accepted)
        B, K, _ = dllm_logits.shape
        p = (ar_logits.double() / self.temperature).softmax(-1)                      # (B, K + 1, V)
        q = (dllm_logits.double() / self.temperature).softmax(-1)                    # (B, K, V)
        p_x, q_x = p[:, :-1].gather(2, draft[..., None])[..., 0], q.gather(2, draft[..., None])[..., 0]
        u = row_uniforms(generators, B, (K + 1,), draft.device)                       # (B, K + 1)
        accepted = leading_true(u[:, :K] * q_x < p_x, length)                         # u < p/q, without dividing
        at = accepted[:, None, None].expand(-1, 1, p.shape[-1])
        p_a = p.gather(1, at)[:, 0]                                                   # (B, V)
        q_a = torch.cat([q, torch.zeros_like(q[:, :1])], 1).gather(1, at)[:, 0]       # 0 after the draft: p itself
        residual = (p_a - q_a).clamp(min=0)
        residual = torch.where(residual.sum(-1, keepdim=True) > 0, residual, p_a)
        return splice(draft, inverse_cdf(residual, u[:, K]), accepted)


def inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """(B,) draws from the unnormalised distributions weights (B, V), by inverting the CDF at u (B,) in [0, 1)."""
    cdf = weights.cumsum(-1)
    index = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
    return index.clamp(max=weights.shape[-1] - 1)


GUIDED_ACCEPT = ("exact", "threshold", "topk")


@VERIFY.register("guided")
class GuidedDiffusion(SpeculativeDiffusion):
    """Greedy `specdiff`'s verdict (`guided_accept='exact'`), or FreeCache's threshold / top-k acceptance: a
    draft token also passes when the AR gives it probability ≥ `guided_threshold`, or ranks it within its
    `guided_top_k`; the first rejected one is replaced by the AR argmax. Deterministic mode only (temperature 0)."""

    def __init__(self, temperature: float = 0.0, guided_accept: str = "exact", guided_threshold: float = 0.5,
                 guided_top_k: int = 2) -> None:
        super().__init__(temperature)
        self.mode, self.threshold, self.top_k = guided_accept, guided_threshold, guided_top_k

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        if cfg.temperature != 0:
            raise ConfigError("verify='guided' is FreeCache's deterministic mode (greedy draft, AR argmax check): "
                              "set temperature=0, or use verify='specdiff' for sampling")

    def passes(self, draft: Tensor, ar_logits: Tensor) -> Tensor:
        """(B, K) bool: the AR model lets draft token k stand (ar_logits (B, K, V) predict the draft positions)."""
        exact = draft == ar_logits.argmax(-1)
        if self.mode == "threshold":
            return exact | (ar_logits.double().softmax(-1).gather(2, draft[..., None])[..., 0] >= self.threshold)
        if self.mode == "topk":
            at = ar_logits.gather(2, draft[..., None])                                # (B, K, 1)
            return exact | ((ar_logits > at).sum(-1) < self.top_k)                    # rank = tokens strictly above
        return exact

    def accept(self, draft, context, dllm_logits, ar_logits, length, generators) -> Verdict:
        accepted = leading_true(self.passes(draft, ar_logits[:, :-1]), length)
        return splice(draft, ar_logits.argmax(-1).gather(1, accepted[:, None])[:, 0], accepted)
