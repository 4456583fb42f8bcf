"""End-of-Text Prediction (EoTP, Learn2PD arXiv 2509.25188): stop decoding the EOS padding once the answer has ended.

The rule (per row, each step, after the commit rule chose its positions): the row's tail from position s on is
*ended* when every position g ≥ s is one of
  * a committed EOS,
  * an EOS the commit rule commits this step,
  * a masked position whose proposed token is an EOS with probability ≥ `eotp_threshold` (anywhere in the
    generated region the forward predicted, not only the current window).
The longest ended tail is filled with EOS now, as committed tokens. The answer is the text before the first
EOS, so the filled positions never enter it; they only spare the steps (and, under a quota rule, the commits)
that decoding them would cost: a tail that is ended in block 0 never opens blocks 1 and 2, and the stop at the
first EOS (`stop_at_eos`) then comes as soon as everything before the tail is decoded. A position the forward
did not predict (a cache computed only the block) breaks the tail, so with such caches the rule sees only what
was committed.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.state import DecodeState


class EndOfText:
    def __init__(self, eotp_threshold: float = 0.9) -> None:
        self.threshold = eotp_threshold

    def ended_tail(self, commit: Tensor, proposed: Tensor, proposed_prob: Tensor, predicted: Tensor,
                   state: DecodeState) -> Tensor:
        """(B, G) bool: the positions of each row's longest tail that is EOS (see the module docstring)."""
        eos = torch.tensor(state.eos_ids, device=proposed.device)
        proposed_eos = torch.isin(proposed, eos)
        committed_eos = ~state.is_masked & torch.isin(state.tokens, eos)
        sure = state.is_masked & predicted & proposed_eos & (proposed_prob >= self.threshold)
        ok = committed_eos | (commit & proposed_eos) | sure                          # (B, G)
        return ok.flip(-1).long().cumprod(-1).flip(-1).bool()                       # all ok from here to the end

    def extend(self, commit: Tensor, proposed: Tensor, proposed_prob: Tensor, predicted: Tensor,
               state: DecodeState) -> Tensor:
        """`commit` plus the masked positions of the ended tail (their proposed tokens are EOS ids)."""
        tail = self.ended_tail(commit, proposed, proposed_prob, predicted, state)
        return commit | (tail & state.is_masked & ~state.finished[:, None])
