"""`gsm8k`: GSM8K-style JSONL files (`question`, `answer` ending in `#### <number>`), given by path.

`path` is a directory holding `train.jsonl` and/or `test.jsonl`, or one `.jsonl` file (used as the
test split). Without `path`, `../shared/data/gsm8k` relative to the working directory is used if it
exists. With `shots=k`, every prompt starts with the first k train examples (skipping the example
itself) as "Question: …\\nAnswer: …\\n\\n"; the prompt ends with "Question: …\\nAnswer:".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from unmask.bench.tasks.base import (NUMBER_RE, SPLITS, TASKS, Example, Task, check_split, clean_completion,
                                     number_after_marker, parse_number)
from unmask.errors import ConfigError

DEFAULT_PATH = Path("../shared/data/gsm8k")


def locate(path: str | Path | None) -> dict[str, Path]:
    """Map each available split to its file."""
    if path is None and not DEFAULT_PATH.exists():
        raise ConfigError(
            f"gsm8k: no data at {DEFAULT_PATH.resolve()}; pass path=<dir with test.jsonl, or a .jsonl file>"
        )
    root = Path(DEFAULT_PATH if path is None else path)
    if root.is_file():
        return {"test": root}
    files = {split: root / f"{split}.jsonl" for split in SPLITS if (root / f"{split}.jsonl").is_file()}
    if not files:
        raise ConfigError(f"gsm8k: {root} is neither a .jsonl file nor a directory with train.jsonl/test.jsonl")
    return files


def target_of(answer: str) -> str | None:
    """The text after the last `####`, without commas or spaces ("1,000" → "1000")."""
    at = answer.rfind("####")
    return None if at < 0 else answer[at + 4 :].strip().replace(",", "")


def read_examples(file: Path, prefix: str) -> list[Example]:
    """Parse one JSONL file; a malformed line raises ConfigError naming file and line."""
    examples = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, answer = row["question"], row["answer"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"{file}:{number}: expected a JSON object with question and answer ({err})") from None
        target = target_of(answer)
        if not target:
            raise ConfigError(f"{file}:{number}: the answer has no '#### <number>'")
        examples.append(Example(f"{prefix}-{len(examples)}", question, answer, target))
    return examples


def same_number(got: float | None, target: str) -> bool:
    want = parse_number(target)
    return got is not None and want is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)


@TASKS.register("gsm8k")
class JsonlTask(Task):
    """GSM8K-style math word problems; scored on the final number (see `score`)."""

    name = "gsm8k"
    gen_length = 256

    def __init__(self, path: str | Path | None = None, shots: int = 0) -> None:
        if not isinstance(shots, int) or shots < 0:
            raise ConfigError(f"gsm8k: shots must be a non-negative int, got {shots!r}")
        self.files = locate(path)
        self.shots = shots
        self._loaded: dict[str, list[Example]] = {}
        if shots and "train" not in self.files:
            raise ConfigError("gsm8k: shots > 0 needs a directory with train.jsonl")

    def examples(self, split: str = "test", n: int | None = None) -> list[Example]:
        if check_split(split) not in self.files:
            raise ConfigError(f"gsm8k: no {split} split among {sorted(self.files)}")
        if split not in self._loaded:
            self._loaded[split] = read_examples(self.files[split], f"{self.name}-{split}")
        if n is not None and n < 0:
            raise ConfigError(f"n must be non-negative, got {n}")
        return self._loaded[split][:n]

    def prompt(self, example: Example) -> str:
        pool = self.examples("train")[: self.shots + 1] if self.shots else []
        shots = [ex for ex in pool if ex.question != example.question]
        if len(shots) < self.shots:
            raise ConfigError(f"gsm8k: shots={self.shots} but train.jsonl has only {len(shots)} usable examples")
        context = "".join(f"Question: {ex.question}\nAnswer: {ex.answer}\n\n" for ex in shots[: self.shots])
        return f"{context}Question: {example.question}\nAnswer:"

    def score(self, example: Example, completion: str) -> float:
        """The number after the last `####`; without one, the last number in the completion."""
        text = clean_completion(completion)
        got = number_after_marker(text)
        if got is None:
            numbers = NUMBER_RE.findall(text)
            got = parse_number(numbers[-1]) if numbers else None
        return float(same_number(got, example.target))
