"""Structured tasks that probe parallel decoding: `sort` and `copy` (safe), `two-modes` (the curse).

`sort` / `copy`: the question lists 4–8 symbols ("sort: 7 3 9 1"); the answer is the sorted or
copied list ("1 3 7 9"). Each output position depends on the input far more than on its neighbours,
so committing many positions in one step is relatively safe.

`two-modes`: the prompt is always "pattern:" and the valid outputs are exactly "ABAB…" and "BABA…"
(`length` letters), seen equally often in training. At every position a well-trained model's marginal
is close to 50/50 between A and B: the modes only exist in the joint distribution. One-shot parallel
decoding samples each position from its own marginal, independently, so it mixes the modes
("ABBA…") and almost never produces a valid string; committing a few tokens at a time lets later
positions condition on earlier ones and pick one mode. Score: 1.0 iff the completion (cut at EOS,
stripped) is exactly one of the two modes. The question is the same in both splits; only the ids
(and the balance of the answers) differ.
"""
from __future__ import annotations

import random

from unmask.bench.tasks.base import (TASKS, Example, GeneratedTask, Task, check_size, check_split,
                                     clean_completion)
from unmask.errors import ConfigError

MIN_ITEMS, MAX_ITEMS = 4, 8


@TASKS.register("sort")
class SortTask(GeneratedTask):
    """Sort 4–8 digits: "sort: 7 3 9 1" → "1 3 7 9"; exact match."""

    name = "sort"
    gen_length = 24
    verb = "sort"
    symbols = "0123456789"

    def transform(self, items: list[str]) -> list[str]:
        return sorted(items)

    def draw(self, rng: random.Random) -> tuple[str, str, str]:
        items = rng.choices(self.symbols, k=rng.randint(MIN_ITEMS, MAX_ITEMS))
        answer = " ".join(self.transform(items))
        return f"{self.verb}: {' '.join(items)}", answer, answer

    def score(self, example: Example, completion: str) -> float:
        return float(clean_completion(completion) == example.target)


@TASKS.register("copy")
class CopyTask(SortTask):
    """Copy 4–8 letters: "copy: q b z b" → "q b z b"; exact match."""

    name = "copy"
    verb = "copy"
    symbols = "abcdefghijklmnopqrstuvwxyz"

    def transform(self, items: list[str]) -> list[str]:
        return list(items)


@TASKS.register("two-modes")
class TwoModesTask(Task):
    """"pattern:" → "ABAB…" or "BABA…"; the parallel-decoding-curse probe (see the module docstring)."""

    name = "two-modes"
    gen_length = 24
    question = "pattern:"

    def __init__(self, seed: int = 0, size: dict[str, int] | None = None, length: int = 16) -> None:
        if not isinstance(length, int) or length < 2 or length % 2:
            raise ConfigError(f"two-modes: length must be an even int >= 2, got {length!r}")
        self.seed = seed
        self.size = check_size(size, {"train": 2000, "test": 100})
        self.modes = ("AB" * (length // 2), "BA" * (length // 2))
        self.gen_length = -(-(length + 4) // 8) * 8

    def examples(self, split: str = "test", n: int | None = None) -> list[Example]:
        check_split(split)
        count = self.size[split] if n is None else n
        if count < 0:
            raise ConfigError(f"n must be non-negative, got {count}")
        rng = random.Random(f"{self.name}:{self.seed}:{split}")
        answers: list[str] = []
        while len(answers) < count:
            answers += rng.sample(self.modes, 2)  # each pair holds both modes once
        return [Example(f"{self.name}-{split}-{i}", self.question, a, a) for i, a in enumerate(answers[:count])]

    def score(self, example: Example, completion: str) -> float:
        return float(clean_completion(completion) in self.modes)
