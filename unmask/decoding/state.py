"""DecodeState: the per-row tensors of the rows being denoised together (generation region only).

Every field is per row: rows join and leave between steps (`select`, `cat`), and nothing about a row lives in
a batch-wide scalar. All tensors live on the model's device; `row_steps` mirrors `row_step` on the host (it
is known without reading the device: every row in the state takes part in every step).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor


@dataclass
class DecodeState:
    """The canvas of B rows, G generated positions each (the prompt is not part of it).

    tokens: (B, G) long, `mask_id` where still masked.     is_masked: (B, G) bool.
    committed_at: (B, G) long, the row's step that committed each position, -1 while masked.
    reopened: (B, G) long, how many times a remask rule reopened each position.
    window_index: (B,) long, the schedule's current window (block) per row.
    window_step: (B,) long, steps taken since the row's window last changed.
    window_size: (B,) long, masked positions the window held when it opened.
    row_step: (B,) long, steps the row has taken (its own clock: 0 at its first step).
    block_offset: (B,) long, where generated index 0 sits inside its first block (block-causal models: the
    prompt length mod the model's block, so the schedule's blocks are the model's; 0 otherwise).
    nfe: (B,) long, model forwards spent on each row.     finished: (B,) bool.
    """

    tokens: Tensor
    is_masked: Tensor
    committed_at: Tensor
    reopened: Tensor
    window_index: Tensor
    window_step: Tensor
    window_size: Tensor
    row_step: Tensor
    block_offset: Tensor
    nfe: Tensor
    finished: Tensor
    mask_id: int
    eos_ids: tuple[int, ...]
    row_steps: list[int] = field(default_factory=list)   # host copy of row_step
    memory: dict[str, Tensor] = field(default_factory=dict)   # per-row tensors (dim 0 = row) a rule keeps across
    # steps (e.g. KLASS's previous distributions); moved with the rows, zero for rows that join later

    ROW_FIELDS = ("tokens", "is_masked", "committed_at", "reopened", "window_index", "window_step", "window_size", "row_step",
                  "block_offset", "nfe", "finished")

    @classmethod
    def start(cls, batch: int, gen_length: int, mask_id: int, eos_ids: tuple[int, ...],
              device: torch.device | str) -> "DecodeState":
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        return cls(
            tokens=torch.full((batch, gen_length), mask_id, dtype=torch.long, device=device),
            is_masked=torch.ones(batch, gen_length, dtype=torch.bool, device=device),
            committed_at=torch.full((batch, gen_length), -1, dtype=torch.long, device=device),
            reopened=torch.zeros(batch, gen_length, dtype=torch.long, device=device),
            window_index=zeros.clone(), window_step=zeros.clone(), window_size=zeros.clone(),
            row_step=zeros.clone(), block_offset=zeros.clone(), nfe=zeros.clone(),
            finished=torch.zeros(batch, dtype=torch.bool, device=device), mask_id=mask_id, eos_ids=eos_ids,
            row_steps=[0] * batch)

    # ---- rows join and leave ----------------------------------------------------------------------
    def select(self, rows: list[int]) -> "DecodeState":
        """The state of `rows` only (in that order)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.tokens.device)
        values = {name: getattr(self, name).index_select(0, index) for name in self.ROW_FIELDS}
        return DecodeState(**values, mask_id=self.mask_id, eos_ids=self.eos_ids,
                           row_steps=[self.row_steps[r] for r in rows],
                           memory={k: v.index_select(0, index) for k, v in self.memory.items()})

    @staticmethod
    def cat(a: "DecodeState", b: "DecodeState") -> "DecodeState":
        """a's rows followed by b's (same gen_length)."""
        values = {name: torch.cat([getattr(a, name), getattr(b, name)]) for name in DecodeState.ROW_FIELDS}
        memory = {}
        for key in a.memory.keys() | b.memory.keys():
            like = a.memory.get(key, b.memory.get(key))
            parts = [s.memory.get(key, like.new_zeros((s.batch, *like.shape[1:]))) for s in (a, b)]
            memory[key] = torch.cat(parts)
        return DecodeState(**values, mask_id=a.mask_id, eos_ids=a.eos_ids, row_steps=a.row_steps + b.row_steps,
                           memory=memory)

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    @property
    def gen_length(self) -> int:
        return self.tokens.shape[1]

    @property
    def step(self) -> int:
        """The largest row clock (display only; decisions use `row_step` / `row_steps`)."""
        return max(self.row_steps, default=0)

    # ---- one step ---------------------------------------------------------------------------------
    def open_windows(self, window_index: Tensor, window: Tensor) -> None:
        """Record the schedule's windows; rows whose window changed restart their per-window step count."""
        changed = window_index != self.window_index  # (B,)
        opened = changed | (self.row_step == 0)
        self.window_size = torch.where(opened, (window & self.is_masked).sum(-1), self.window_size)
        self.window_step = torch.where(changed, torch.zeros_like(self.window_step), self.window_step)
        self.window_index = window_index

    def apply(self, commit: Tensor, proposed: Tensor, reopen: Tensor | None = None, edit: Tensor | None = None) -> None:
        """Fill `commit` positions with `proposed` tokens, reopen `reopen` positions (back to the mask) and set
        `edit` positions (committed ones) to `proposed`; all (B, G) bool. Finished rows do not change."""
        active = ~self.finished  # (B,)
        commit = commit & active[:, None]
        write = commit if edit is None else commit | (edit & active[:, None])
        self.tokens = torch.where(write, proposed, self.tokens)
        self.is_masked = self.is_masked & ~commit
        self.committed_at = torch.where(write, self.row_step[:, None], self.committed_at)
        if reopen is not None:
            reopen = reopen & active[:, None]
            self.tokens = torch.where(reopen, torch.full_like(self.tokens, self.mask_id), self.tokens)
            self.is_masked = self.is_masked | reopen
            self.committed_at = torch.where(reopen, -1, self.committed_at)
            self.reopened = self.reopened + reopen.long()
        self.nfe = self.nfe + active.long()
        self.window_step = self.window_step + active.long()
        self.row_step = self.row_step + 1
        self.row_steps = [s + 1 for s in self.row_steps]

    def first_eos(self) -> Tensor:
        """(B,) index of the first committed EOS per row, G when there is none."""
        is_eos = torch.isin(self.tokens, torch.tensor(self.eos_ids, device=self.tokens.device)) & ~self.is_masked
        idx = torch.arange(self.gen_length, device=self.tokens.device)
        return torch.where(is_eos, idx, self.gen_length).min(-1).values

    def final_length(self) -> Tensor:
        """(B,) how many leading generated tokens are final: committed, and left of every masked position.

        With remasking, a rule that may reopen committed tokens narrows this further (it owns that decision).
        """
        idx = torch.arange(self.gen_length, device=self.tokens.device)
        return torch.where(self.is_masked, idx, self.gen_length).min(-1).values

    def update_finished(self, limit: Tensor | None = None, unsettled: Tensor | None = None) -> None:
        """A row is finished when no unsettled position (a mask; with a verifying remask rule also a draft not
        yet verified) remains before `limit` (B,) (its first EOS, or the end of the block holding it under a
        remask rule; None: anywhere). Tokens before the limit are then final: stopping early changes none."""
        if limit is None:
            limit = torch.full_like(self.nfe, self.gen_length)
        pending = self.is_masked if unsettled is None else unsettled
        idx = torch.arange(self.gen_length, device=self.tokens.device)
        self.finished = self.finished | ~(pending & (idx < limit[:, None])).any(-1)


__all__ = ["DecodeState", "fields"]
