"""KLASS (arXiv 2511.05664; shkim0116/KLASS `llada_klass.py::stable_confident_decode`): commit what is both
confident and stable.

Each step, for every predicted position: p_t = softmax(logits) in float64 and KL(p_t ‖ p_{t-1}) against the
row's previous distribution at that position (zeros before its first prediction, so the first KL is large).
A masked candidate is ready when its confidence > `threshold` and its last `kl_history` KLs are all below
`kl_threshold` (and the block has run at least `kl_history` steps). Ready tokens are all committed; when none is
ready, LLaDA's fixed quota commits the most confident ones. The previous distributions and KL history are
per-row memory on the DecodeState (G × V float64 per row: cheap on small vocabularies, ~260 MB per row for a
126k vocabulary and 256 tokens). With temperature > 0 the reference measures KL on Gumbel-noised logits; this
rule measures it on the model's logits.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.commit import COMMIT, LinearQuota
from unmask.decoding.state import DecodeState

EPS = 1e-12


@COMMIT.register("klass")
class KlassCommit(LinearQuota):
    needs_view = True

    def __init__(self, steps_per_window: int, threshold: float = 0.9, kl_threshold: float = 0.01,
                 kl_history: int = 2) -> None:
        super().__init__(steps_per_window)
        self.threshold, self.kl_threshold, self.history = threshold, kl_threshold, kl_history

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState, view=None) -> Tensor:
        p = view.logits.double().softmax(-1)                                     # (B, N, V)
        B, G, V = state.batch, state.gen_length, p.shape[-1]
        where = view.predicts[..., None].expand(-1, -1, V)                       # (B, N, V)
        prev_all = state.memory.get("klass_p", p.new_zeros(B, G, V))
        prev = prev_all.gather(1, where)
        kl = (p * ((p + EPS).log() - (prev + EPS).log())).sum(-1)                # (B, N)
        history = state.memory.get("klass_kl", p.new_zeros(B, G, self.history))
        predicted = torch.zeros(B, G, dtype=torch.bool, device=p.device).scatter(1, view.predicts, True)
        rolled = history.roll(-1, dims=-1)
        rolled[..., -1] = torch.zeros(B, G, dtype=kl.dtype, device=kl.device).scatter(1, view.predicts, kl)
        history = torch.where(predicted[..., None], rolled, history)
        state.memory["klass_p"] = prev_all.scatter(1, where, p)
        state.memory["klass_kl"] = history
        stable = (history < self.kl_threshold).all(-1) & (state.window_step >= self.history - 1)[:, None]
        ready = stable & (scores > self.threshold) & candidates
        return torch.where(ready.any(-1, keepdim=True), ready, super().select(scores, candidates, state))
