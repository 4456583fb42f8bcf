"""Static input buffers of the step: the forward's token ids, positions and logit rows, written in place.

    buffers = StepBuffers(context_len=256, device=device)
    ids, positions, logits_at = buffers.inputs(canvas, state, plan, bucket)   # views of the bucket's buffers

One flat long buffer per (batch bucket, input), of bucket × context_len elements, allocated on the bucket's first
step. A step of B rows and query length Q uses the first B·Q elements viewed as (B, Q): every (bucket, query
length) reads its inputs from one fixed address, step after step, which is what a captured CUDA graph needs
(issue 16 part B). The ids are concatenated (or gathered, for a partial forward) straight into the buffer, the
positions and logit rows are copied in with `copy_`; only the first B rows are used (the rows up to the bucket
are not computed on the CPU).
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache import Canvas, Plan
from unmask.decoding import DecodeState

NAMES = ("ids", "positions", "logits_at")


class StepBuffers:
    """Per batch bucket, one flat buffer per step input; see the module docstring."""

    def __init__(self, context_len: int, device: torch.device) -> None:
        self.context_len, self.device = context_len, device
        self.flat: dict[tuple[int, str], Tensor] = {}

    def view(self, bucket: int, name: str, rows: int, width: int) -> Tensor:
        """(rows, width) long view of the bucket's `name` buffer, from its first element."""
        if width > self.context_len:
            raise RuntimeError(f"a step input of width {width} is longer than the runner's context {self.context_len}")
        key = (bucket, name)
        if key not in self.flat:
            self.flat[key] = torch.zeros(bucket * self.context_len, dtype=torch.long, device=self.device)
        return self.flat[key][:rows * width].view(rows, width)

    def inputs(self, canvas: Canvas, state: DecodeState, plan: Plan, bucket: int) -> tuple[Tensor, Tensor, Tensor]:
        """(ids, positions, logits_at) of the plan's forward, each (B, Q or N) in `bucket`'s buffers (B ≤ bucket)."""
        B, L = canvas.key_mask.shape
        Q = L if plan.compute is None else plan.compute.shape[1]
        ids, positions = self.view(bucket, "ids", B, Q), self.view(bucket, "positions", B, Q)
        if plan.compute is None:
            canvas.ids(state, out=ids)
            positions.copy_(canvas.positions)
        else:
            index = plan.compute
            torch.gather(canvas.ids(state), 1, index, out=ids)
            torch.gather(canvas.positions, 1, index, out=positions)
        logits_at = self.view(bucket, "logits_at", B, plan.logits_at.shape[1])
        logits_at.copy_(plan.logits_at)
        return ids, positions, logits_at

    def addresses(self) -> dict[tuple[int, str], int]:
        """data_ptr of every buffer allocated so far (tests check they stay put)."""
        return {key: t.data_ptr() for key, t in self.flat.items()}
