"""DecodeState: the per-row tensors of one batch being denoised (generation region only).

All tensors live on the model's device; nothing here reads them back to the host except `all_finished_cpu`,
the one named sync per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class DecodeState:
    """The canvas of a batch: B rows, G generated positions each (the prompt is not part of it).

    tokens: (B, G) long, `mask_id` where still masked.     is_masked: (B, G) bool.
    committed_at: (B, G) long, the step that committed each position, -1 while masked.
    window_index: (B,) long, the schedule's current window (block) per row.
    window_step: (B,) long, steps taken since the row's window last changed.
    window_size: (B,) long, masked positions the window held when it opened.
    nfe: (B,) long, model forwards spent on each row.     finished: (B,) bool.
    """

    tokens: Tensor
    is_masked: Tensor
    committed_at: Tensor
    window_index: Tensor
    window_step: Tensor
    window_size: Tensor
    nfe: Tensor
    finished: Tensor
    mask_id: int
    eos_ids: tuple[int, ...]
    step: int = 0

    @classmethod
    def start(cls, batch: int, gen_length: int, mask_id: int, eos_ids: tuple[int, ...],
              device: torch.device | str) -> "DecodeState":
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        return cls(
            tokens=torch.full((batch, gen_length), mask_id, dtype=torch.long, device=device),
            is_masked=torch.ones(batch, gen_length, dtype=torch.bool, device=device),
            committed_at=torch.full((batch, gen_length), -1, dtype=torch.long, device=device),
            window_index=zeros.clone(), window_step=zeros.clone(), window_size=zeros.clone(), nfe=zeros.clone(),
            finished=torch.zeros(batch, dtype=torch.bool, device=device), mask_id=mask_id, eos_ids=eos_ids)

    @property
    def gen_length(self) -> int:
        return self.tokens.shape[1]

    def open_windows(self, window_index: Tensor, window: Tensor) -> None:
        """Record the schedule's windows; rows whose window changed restart their per-window step count."""
        changed = window_index != self.window_index  # (B,)
        self.window_size = torch.where(changed | (self.step == 0), (window & self.is_masked).sum(-1), self.window_size)
        self.window_step = torch.where(changed, torch.zeros_like(self.window_step), self.window_step)
        self.window_index = window_index

    def apply(self, commit: Tensor, proposed: Tensor, remask: Tensor) -> None:
        """Fill `commit` positions with `proposed` tokens and reopen `remask` positions; all (B, G)."""
        active = ~self.finished  # (B,)
        commit, remask = commit & active[:, None], remask & active[:, None]
        self.tokens = torch.where(commit, proposed, self.tokens)
        self.tokens = torch.where(remask, torch.full_like(self.tokens, self.mask_id), self.tokens)
        self.is_masked = (self.is_masked & ~commit) | remask
        self.committed_at = torch.where(commit, self.step, self.committed_at)
        self.committed_at = torch.where(remask, -1, self.committed_at)
        self.nfe = self.nfe + active.long()
        self.window_step = self.window_step + active.long()
        self.step += 1

    def first_eos(self) -> Tensor:
        """(B,) index of the first committed EOS per row, G when there is none."""
        is_eos = torch.isin(self.tokens, torch.tensor(self.eos_ids, device=self.tokens.device)) & ~self.is_masked
        idx = torch.arange(self.gen_length, device=self.tokens.device)
        return torch.where(is_eos, idx, self.gen_length).min(-1).values

    def update_finished(self, stop_at_eos: bool) -> None:
        """A row is finished when no mask remains before its first EOS (or anywhere, without EOS stopping).

        Tokens before the first EOS are then final, so stopping early changes none of them.
        """
        limit = self.first_eos() if stop_at_eos else torch.full_like(self.nfe, self.gen_length)
        idx = torch.arange(self.gen_length, device=self.tokens.device)
        self.finished = self.finished | ~(self.is_masked & (idx < limit[:, None])).any(-1)

    def all_finished_cpu(self) -> bool:
        """The one host synchronisation per step."""
        return bool(self.finished.all())
