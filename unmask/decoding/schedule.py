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
    def window_index(self, state: DecodeState) -> Tensor:
        """(B,) long: the index of each row's current window."""

    @abstractmethod
    def window(self, state: DecodeState) -> Tensor:
        """(B, G) bool: the positions of each row's current window."""

    @abstractmethod
    def window_bounds(self, state: DecodeState) -> tuple[Tensor, Tensor]:
        """((B,), (B,)) long: start and end (exclusive) of each row's window, as generated-region indices."""


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


@SCHEDULES.register("blocks")
class BlockSchedule(Schedule):
    """Semi-autoregressive blocks (LLaDA, Fast-dLLM): a row works on the first block that still has a mask.

    With block_length == gen_length this is the full-sequence schedule.
    """

    def __init__(self, block_length: int) -> None:
        self.block_length = block_length

    def window_index(self, state: DecodeState) -> Tensor:
        G = state.gen_length
        idx = torch.arange(G, device=state.tokens.device)
        first_masked = torch.where(state.is_masked, idx, G).min(-1).values  # (B,)
        return first_masked.clamp(max=G - 1) // self.block_length

    def window(self, state: DecodeState) -> Tensor:
        idx = torch.arange(state.gen_length, device=state.tokens.device)
        return (idx // self.block_length)[None, :] == self.window_index(state)[:, None]

    def window_bounds(self, state: DecodeState) -> tuple[Tensor, Tensor]:
        start = self.window_index(state) * self.block_length
        return start, (start + self.block_length).clamp(max=state.gen_length)


@SCHEDULES.register("full")
class FullSchedule(BlockSchedule):
    """The whole generation region is one window (Dream's reference sampler)."""

    def __init__(self, block_length: int | None = None) -> None:
        super().__init__(block_length=1 << 62)
