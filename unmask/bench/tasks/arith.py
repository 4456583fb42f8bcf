"""`arith`: short generated arithmetic word problems with a worked answer ending in `#### <number>`.

Sized for a tiny character-level model: questions of at most MAX_QUESTION_CHARS characters, answers
of at most MAX_ANSWER_CHARS, operands of one or two digits, every value in [1, MAX_VALUE], and the
alphabet letters, digits, space and `.,?+-*=#`. Example:

    question: "Ann has 23 pens. She buys 5 more and gives away 12. How many pens now?"
    answer:   "23+05=28. 28-12=16. #### 16"

The worked steps write every number with two digits (a scratchpad convention: each digit of a step sits
at a fixed offset from its `+`, `-`, `*` and `=`, which is what lets a small model learn the carries); the
final answer after `####` is the plain number.

Each step's left operand is the previous step's result, so the final answer depends on tokens
generated earlier: committing many answer tokens in one parallel step tends to break it.
"""
from __future__ import annotations

import random

from unmask.bench.tasks.base import TASKS, Example, GeneratedTask, clean_completion, number_after_marker
from unmask.errors import ConfigError

MAX_QUESTION_CHARS = 90
MAX_ANSWER_CHARS = 40
MAX_VALUE = 99
MAX_STEPS = 3

NAMES = (("Ann", "she"), ("Bob", "he"), ("Sam", "he"), ("Eve", "she"),
         ("Tom", "he"), ("Mia", "she"), ("Max", "he"), ("Zoe", "she"))
OBJECTS = ("pens", "apples", "cards", "books", "eggs", "coins", "cups", "toys", "shells", "stamps")
ADD = ("buys {n} more", "gets {n} more", "finds {n} more", "wins {n} more")
SUB = ("gives away {n}", "loses {n}", "sells {n}", "uses {n}")
MUL = {2: "doubles them", 3: "triples them"}
ENDINGS = ("How many {obj} does {pron} have now?", "How many {obj} now?", "How many does {pron} have?")


def max_question_chars() -> int:
    return MAX_QUESTION_CHARS


def max_answer_chars() -> int:
    return MAX_ANSWER_CHARS


def worked(left: int, op: str, right: int, result: int) -> str:
    """One worked step, every number with two digits: worked(5, "+", 12, 17) == "05+12=17."."""
    return f"{left:02d}{op}{right:02d}={result:02d}."


def draw_step(rng: random.Random, value: int) -> tuple[str, str, int] | None:
    """One operation on `value`: (phrase, worked step, new value), or None if the draw does not fit."""
    op = rng.choices("+-*", weights=(4, 4, 2))[0]
    if op == "+" and value < MAX_VALUE:
        n = rng.randint(1, min(40, MAX_VALUE - value))
        return rng.choice(ADD).format(n=n), worked(value, "+", n, value + n), value + n
    if op == "-" and value > 1:
        n = rng.randint(1, min(40, value - 1))
        return rng.choice(SUB).format(n=n), worked(value, "-", n, value - n), value - n
    if op == "*":
        k = rng.choice(tuple(MUL))
        if value * k <= MAX_VALUE:
            return MUL[k], worked(value, "*", k, value * k), value * k
    return None


def join_phrases(phrases: list[str]) -> str:
    """["a"] → "a"; ["a", "b"] → "a and b"; ["a", "b", "c"] → "a, b and c"."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def draw_problem(rng: random.Random, max_steps: int) -> tuple[str, str, str] | None:
    """A (question, answer, target), or None if a step or the text length does not fit."""
    name, pron = rng.choice(NAMES)
    obj = rng.choice(OBJECTS)
    value = rng.randint(2, 50)
    question = f"{name} has {value} {obj}."
    phrases, worked = [], []
    for _ in range(rng.randint(1, max_steps)):
        step = draw_step(rng, value)
        if step is None:
            return None
        phrases.append(step[0])
        worked.append(step[1])
        value = step[2]
    ending = rng.choice(ENDINGS).format(obj=obj, pron=pron)
    question = f"{question} {pron.capitalize()} {join_phrases(phrases)}. {ending}"
    answer = " ".join(worked) + f" #### {value}"
    if len(question) > MAX_QUESTION_CHARS or len(answer) > MAX_ANSWER_CHARS:
        return None
    return question, answer, str(value)


@TASKS.register("arith")
class ArithTask(GeneratedTask):
    """Generated 1–3 step word problems (+, −, ×2, ×3); scored on the number after the last `####`."""

    name = "arith"
    gen_length = 48

    def __init__(self, seed: int = 0, size: dict[str, int] | None = None, max_steps: int = MAX_STEPS) -> None:
        if not 1 <= max_steps <= MAX_STEPS:
            raise ConfigError(f"arith: max_steps must be in [1, {MAX_STEPS}], got {max_steps}")
        super().__init__(seed, size)
        self.max_steps = max_steps

    def draw(self, rng: random.Random) -> tuple[str, str, str] | None:
        return draw_problem(rng, self.max_steps)

    def score(self, example: Example, completion: str) -> float:
        got = number_after_marker(clean_completion(completion))
        return float(got is not None and got == int(example.target))
