"""The Task contract (examples → prompt → score), the task registry, and helpers shared by the tasks.

Generated tasks draw from a seeded stream per split and keep an example only if a hash of its question
falls in that split's bucket, so train and test never share a question, whatever the seed or size.
"""
from __future__ import annotations

import hashlib
import inspect
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

from unmask.errors import ConfigError
from unmask.registry import Registry

SPLITS = ("train", "test")
TEST_BUCKETS = 10  # one question in ten belongs to the test split
STOP_MARKERS = ("<|eos|>", "<|pad|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>")
NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Example:
    id: str  # stable id, e.g. "arith-test-17"
    question: str  # the problem text, without the answer
    answer: str  # the full target completion a model is trained on
    target: str  # the final answer to check


class Task(ABC):
    """A benchmark: deterministic examples per split, the prompt text, and a score in [0, 1]."""

    name: ClassVar[str]
    gen_length: ClassVar[int]

    @abstractmethod
    def examples(self, split: str = "test", n: int | None = None) -> list[Example]:
        """The first `n` examples of `split` ("train" or "test"); the same list on every call."""

    def prompt(self, example: Example) -> str:
        return example.question + "\n"

    @abstractmethod
    def score(self, example: Example, completion: str) -> float:
        """1.0 for a correct completion, 0.0 otherwise; never raises on malformed text."""

    def score_all(self, examples: Sequence[Example], completions: Sequence[str]) -> list[float]:
        """`score` of each (example, completion) pair, in order (code tasks run several at once)."""
        return [self.score(e, c) for e, c in zip(examples, completions)]


TASKS = Registry[type[Task]]("task")


def get_task(name: str, **kwargs: object) -> Task:
    """Build the task registered as `name`; unknown keyword arguments raise ConfigError."""
    cls = TASKS.get(name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"task {name!r}: {err}") from None
    return cls(**kwargs)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


def check_size(size: dict[str, int] | None, default: dict[str, int]) -> dict[str, int]:
    """Merge a user `size` ({"train": n, "test": m}, either key optional) into the defaults."""
    merged = dict(default)
    for split, count in (size or {}).items():
        check_split(split)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"size[{split!r}] must be a non-negative int, got {count!r}")
        merged[split] = count
    return merged


def bucket_of(question: str) -> str:
    """The split a question belongs to, from a stable hash of its text."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_BUCKETS == 0 else "train"


def clean_completion(completion: str) -> str:
    """The completion up to the first end-of-sequence marker, without surrounding whitespace."""
    for marker in STOP_MARKERS:
        completion = completion.split(marker, 1)[0]
    return completion.strip()


def parse_number(text: str) -> float | None:
    """The first number in `text` ("1,234.5" → 1234.5), or None."""
    match = NUMBER_RE.search(text)
    return float(match.group().replace(",", "")) if match else None


def number_after_marker(text: str, marker: str = "####") -> float | None:
    """The first number after the last `marker` in `text`, or None."""
    at = text.rfind(marker)
    return None if at < 0 else parse_number(text[at + len(marker) :])


class GeneratedTask(Task):
    """A task whose examples come from `draw(rng)`, one seeded stream per split, deduplicated."""

    default_size: ClassVar[dict[str, int]] = {"train": 20000, "test": 500}

    def __init__(self, seed: int = 0, size: dict[str, int] | None = None) -> None:
        self.seed = seed
        self.size = check_size(size, self.default_size)

    @abstractmethod
    def draw(self, rng: random.Random) -> tuple[str, str, str] | None:
        """One (question, answer, target), or None to reject the draw."""

    def examples(self, split: str = "test", n: int | None = None) -> list[Example]:
        check_split(split)
        count = self.size[split] if n is None else n
        if count < 0:
            raise ConfigError(f"n must be non-negative, got {count}")
        rng = random.Random(f"{self.name}:{self.seed}:{split}")
        found: dict[str, Example] = {}
        for _ in range(100 * count + 1000):
            if len(found) == count:
                return list(found.values())
            drawn = self.draw(rng)
            if drawn is not None and drawn[0] not in found and bucket_of(drawn[0]) == split:
                found[drawn[0]] = Example(f"{self.name}-{split}-{len(found)}", *drawn)
        if len(found) < count:
            raise ConfigError(f"{self.name}: cannot draw {count} distinct {split} examples")
        return list(found.values())
