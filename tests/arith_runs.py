"""Decoding the first problems of the arith test split (never seen in training) with a shipped model: the
measurement the tests of tiny-arith and its companions share."""
from __future__ import annotations

from unmask import LLM, DecodeConfig
from unmask.bench.tasks import get_task
from unmask.engine.api import Completion


def decode_test_problems(llm: LLM, config: DecodeConfig, n: int) -> tuple[float, list[Completion]]:
    """(accuracy, the completions) of `llm` on the first `n` arith test problems under `config`."""
    task = get_task("arith")
    examples = task.examples("test", n)
    done = llm.generate([task.prompt(e) for e in examples], config)
    return sum(task.score(e, c.text) for e, c in zip(examples, done)) / n, done


def accuracy_and_nfe(llm: LLM, config: DecodeConfig, n: int) -> tuple[float, float]:
    """(accuracy, mean NFE) of `llm` on the first `n` arith test problems under `config`."""
    accuracy, done = decode_test_problems(llm, config, n)
    return accuracy, sum(c.nfe for c in done) / n
