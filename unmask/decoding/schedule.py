"""Schedules: which generated positions may be committed now (the current window of each row)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from unmask.decoding.state import DecodeState
from unmask.registry import Registry


class Schedule(ABC):
    """Divides the generation region into windows that are decoded one after another, per row."""

    @abstractmethod
    def current(self, state: DecodeState, unsettled: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Each row's current window: (index (B,) long, positions (B, G) bool). `unsettled` (B, G) bool: the
        positions still open (default: the masked ones; a verifying remask rule adds its unverified drafts)."""


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


@SCHEDULES.register("blocks")
class BlockSchedule(Schedule):
    """Semi-autoregressive blocks (LLaDA, Fast-dLLM): a row works on the first block that still has a mask.

    With block_length == gen_length this is the full-sequence schedule. A row with no mask left stays on
    its last block. Blocks count from `state.block_offset` (B,): generated index i is in block
    (i + offset) // block_length, so on a block-causal model the first block is the one holding the prompt's
    tail (shorter) and every block is one of the model's.
    """

    def __init__(self, block_length: int) -> None:
        self.block_length = block_length

    def current(self, state: DecodeState, unsettled: Tensor | None = None) -> tuple[Tensor, Tensor]:
        G = state.gen_length
        idx = torch.arange(G, device=state.tokens.device)
        open_ = state.is_masked if unsettled is None else unsettled
        first_masked = torch.where(open_, idx, G).min(-1).values                     # (B,)
        offset = state.block_offset                                                  # (B,)
        index = (first_masked.clamp(max=G - 1) + offset) // self.block_length        # (B,)
        return index, (idx[None, :] + offset[:, None]) // self.block_length == index[:, None]


@SCHEDULES.register("full")
class FullSchedule(BlockSchedule):
    """The whole generation region is one window (Dream's reference sampler)."""

    def __init__(self, block_length: int | None = None) -> None:
        super().__init__(block_length=1 << 62)
