"""Guidance's extra rows in the forward, each with cache storage of its own.

With guidance every request is two model rows: its own, and the guidance copy (LLaDA's CFG: the prompt
replaced by [MASK]). The step runs both in one batched forward, laid out as [main rows; copies]. The copy's
K/V differ from the main row's (its prompt differs), so a cache must hold a row for each:
`PairedCache` wraps any cache built for 2B physical rows and presents it to the group as B logical rows,
so the group's row bookkeeping (rows joining, leaving, splitting off for a refresh) moves both halves of a
request together. Its `plan`/`update` take the paired canvas and state (`paired_rows`), whose copy rows
make the same cache decisions as their main rows (same positions, clock, windows and commits).
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache import Cache, Canvas, Plan
from unmask.decoding import DecodeState
from unmask.decoding.guidance import Guidance


def paired_rows(canvas: Canvas, state: DecodeState, guidance: Guidance) -> tuple[Canvas, DecodeState]:
    """The forward's 2B rows: the main rows, then each row's guidance copy."""
    prompt, tokens = guidance.variant(canvas.prompt, canvas.key_mask[:, :canvas.prompt_length], state.tokens)
    both = Canvas(torch.cat([canvas.prompt, prompt]), canvas.key_mask.repeat(2, 1), canvas.positions.repeat(2, 1),
                  canvas.logit_shift)
    return both, paired_state(state, tokens)


def paired_state(state: DecodeState, copy_tokens: Tensor) -> DecodeState:
    """The 2B rows' state: the main rows', then the copies' (same clocks and windows, their own tokens)."""
    both = DecodeState.cat(state, state)
    both.tokens = torch.cat([state.tokens, copy_tokens])
    return both


def pair_index(rows: list[int], held: int) -> list[int]:
    """Physical rows of logical `rows` when `held` logical rows are stored ([main; copies]); -1 stays new."""
    return list(rows) + [r + held if r >= 0 else -1 for r in rows]


class PairedCache(Cache):
    """B logical rows over an inner cache of 2B rows: row r is physical rows r and B + r."""

    def __init__(self, inner: Cache) -> None:
        self.inner = inner
        self.uniform_cost = inner.uniform_cost

    def held(self) -> int:
        return self.inner.batch_rows() // 2

    # ---- the step (paired canvas and state, 2B rows) ------------------------------------------------
    def plan(self, canvas: Canvas, state: DecodeState, window: Tensor) -> Plan:
        return self.inner.plan(canvas, state, window)

    def update(self, plan: Plan, state: DecodeState, scores: Tensor) -> None:
        self.inner.update(plan, state, scores)

    # ---- host decisions (logical state, B rows: both halves decide alike) -------------------------------
    def host_request(self, state: DecodeState) -> Tensor | None:
        return self.inner.host_request(DecodeState.cat(state, state))

    def host_reply(self, values: list[int]) -> None:
        self.inner.host_reply(values)

    def heavy_rows(self, state: DecodeState) -> list[bool] | None:
        heavy = self.inner.heavy_rows(DecodeState.cat(state, state))
        if heavy is None:
            return None
        B = state.batch
        return [a or b for a, b in zip(heavy[:B], heavy[B:])]

    # ---- rows join and leave (logical rows) ----------------------------------------------------------
    def take_rows(self, index: list[int]) -> None:
        self.inner.take_rows(pair_index(index, self.held()))

    def split(self, rows: list[int], refreshing: bool = False) -> "PairedCache":
        return PairedCache(self.inner.split(pair_index(rows, self.held()), refreshing))

    def merge(self, other: "PairedCache") -> None:
        a, b = self.held(), other.held()
        self.inner.merge(other.inner)   # [main a; copies a; main b; copies b] → [main a; main b; copies a; copies b]
        self.inner.take_rows(list(range(a)) + list(range(2 * a, 2 * a + b)) + list(range(a, 2 * a))
                             + list(range(2 * a + b, 2 * (a + b))))

    def reset(self, rows: Tensor | None = None) -> None:
        self.inner.reset(None if rows is None else torch.cat([rows, rows + self.held()]))

    def drop_rewritten(self) -> None:
        self.inner.drop_rewritten()

    def nbytes(self) -> int:
        return self.inner.nbytes()

    def batch_rows(self) -> int:
        return self.held()
