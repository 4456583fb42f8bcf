"""Teacher trajectories for self-distillation (dParallel): the teacher's own decodes of the training prompts.

The teacher decodes every training prompt with the engine (`LLM.generate`, a recipe of train/evaluate.py);
its completion, EOS-padded to gen_length, is the student's target, so the student learns the teacher's
own outputs rather than the data set's. The decodes are cached in the run directory
(`teacher/answers.safetensors` + `teacher/meta.json`), so a resumed run reads them instead of decoding again;
a cache made with another teacher, recipe or data set is refused by name.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from unmask.bench.tasks import Task
from unmask.errors import CheckpointError, ConfigError
from unmask.train.char_tokenizer import EOS_ID
from unmask.train.data import Pair, encode_examples

ANSWERS, META = "teacher/answers.safetensors", "teacher/meta.json"


def decode_answers(teacher: str, task: Task, n: int, recipe_name: str, block_length: int,
                   device: str | None = None, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(answer ids (N, gen_length) EOS-padded, correct (N,) bool) of the teacher on the first n train prompts."""
    from unmask.engine.llm import LLM
    from unmask.train.evaluate import recipe

    llm, cfg = LLM(teacher, device=device), recipe(recipe_name, task.gen_length, block_length)
    examples = task.examples("train", n)
    answers, correct, t0 = [], [], time.perf_counter()
    for i in range(0, len(examples), chunk):
        part = examples[i:i + chunk]
        for ex, done in zip(part, llm.generate([task.prompt(ex) for ex in part], cfg)):
            ids = list(done.token_ids)[: task.gen_length]
            answers.append(ids + [EOS_ID] * (task.gen_length - len(ids)))
            correct.append(bool(task.score(ex, done.text)))
        sys.stderr.write(f"\rteacher trajectories: {len(answers)}/{len(examples)} "
                         f"({sum(correct) / len(correct):.1%} correct) {time.perf_counter() - t0:.0f} s")
        sys.stderr.flush()
    sys.stderr.write("\n")
    return torch.tensor(answers, dtype=torch.long), torch.tensor(correct)


def identity(teacher: str, task: Task, n: int, recipe_name: str, block_length: int) -> dict[str, Any]:
    """What a cache must have been made from to be reused."""
    return {"teacher": str(teacher), "task": task.name, "n": n, "recipe": recipe_name, "block_length": block_length}


def load_or_decode(out: str | Path, teacher: str, task: Task, n: int, recipe_name: str, block_length: int,
                   device: str | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The cached trajectories in `out`, or decode and cache them; returns (answers, correct, meta)."""
    out, want = Path(out), identity(teacher, task, n, recipe_name, block_length)
    if (out / META).is_file():
        try:
            meta = json.loads((out / META).read_text())
            tensors = load_file(str(out / ANSWERS))
        except Exception as e:  # JSON or safetensors errors: a damaged cache
            raise CheckpointError(f"{out / 'teacher'}: the cached teacher trajectories are damaged ({str(e)[:100]}); "
                                  "delete that folder to decode them again") from None
        differ = [f"{k} {meta.get(k)!r} != {v!r}" for k, v in want.items() if meta.get(k) != v]
        if differ:
            raise ConfigError(f"{out / 'teacher'} holds trajectories of another setup ({'; '.join(differ)})")
        return tensors["answers"], tensors["correct"].bool(), meta
    t0 = time.perf_counter()
    answers, correct = decode_answers(teacher, task, n, recipe_name, block_length, device)
    (out / ANSWERS).parent.mkdir(parents=True, exist_ok=True)
    save_file({"answers": answers, "correct": correct.to(torch.uint8)}, str(out / ANSWERS))
    meta = {**want, "accuracy": float(correct.float().mean()), "seconds": time.perf_counter() - t0}
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    return answers, correct, meta


def teacher_pairs(task: Task, n: int, answers: torch.Tensor, correct: torch.Tensor, keep_wrong: bool) -> list[Pair]:
    """(prompt ids, teacher answer ids) for SFT batches; the teacher's wrong answers are dropped unless keep_wrong."""
    prompts = [p for p, _ in encode_examples(task, "train", n)]
    pairs = [(p, a) for p, a, ok in zip(prompts, answers.tolist(), correct.tolist()) if ok or keep_wrong]
    if not pairs:
        raise ConfigError("the teacher answered no training prompt correctly: nothing to distil")
    return pairs
