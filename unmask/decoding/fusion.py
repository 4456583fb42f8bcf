"""Logits fusion: reshape the step's logits before tokens are proposed and scored, with per-row memory.

`credit` (dInfer `CreditThresholdParallelDecoder`, arXiv 2510.08666): a credit matrix per row (G × V, float32,
on `DecodeState.memory`) decays by `credit_beta` each step after a block's first, and gains (top-1 probability)
^ `credit_gamma` at the top-1 token of every masked position of the current block; the step decodes from
logits + `credit_alpha` · log(1 + credit), so a token that stays on top across steps crosses the commit
threshold sooner. Pair it with the threshold rule (the `dinfer-credit` preset).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.decoding.state import DecodeState
from unmask.registry import Registry


class LogitsFusion(ABC):
    @abstractmethod
    def __call__(self, logits: Tensor, predicts: Tensor, window: Tensor, state: DecodeState) -> Tensor:
        """logits (B, N, V) at generated positions `predicts` (B, N) → the logits to propose and score from."""


FUSION: Registry[type[LogitsFusion]] = Registry("logits fusion")


@FUSION.register("none")
class NoFusion(LogitsFusion):
    def __call__(self, logits: Tensor, predicts: Tensor, window: Tensor, state: DecodeState) -> Tensor:
        return logits


@FUSION.register("credit")
class CreditFusion(LogitsFusion):
    def __init__(self, credit_alpha: float = 0.7, credit_gamma: float = 0.2, credit_beta: float = 0.8) -> None:
        self.alpha, self.gamma, self.beta = credit_alpha, credit_gamma, credit_beta

    def __call__(self, logits: Tensor, predicts: Tensor, window: Tensor, state: DecodeState) -> Tensor:
        B, V = logits.shape[0], logits.shape[-1]
        credit = state.memory.get("credit", torch.zeros(B, state.gen_length, V, device=logits.device))
        decay = torch.where(state.window_step > 0, self.beta, 1.0).to(credit.dtype)           # (B,)
        credit = credit * decay[:, None, None]
        top_p, top_id = logits.float().softmax(-1).max(-1)                                      # (B, N)
        live = (state.is_masked & window).gather(1, predicts)                                   # (B, N)
        gain = torch.zeros(B, predicts.shape[1], V, device=logits.device)
        gain.scatter_(2, top_id[..., None], (top_p.pow(self.gamma) * live)[..., None])
        where = predicts[..., None].expand(-1, -1, V)
        credit = credit.scatter_add(1, where, gain)
        state.memory["credit"] = credit
        return logits + self.alpha * torch.log1p(credit.gather(1, where)).to(logits.dtype)
