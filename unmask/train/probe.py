"""Digit probe for `arith` models: can the model do a worked step's arithmetic, apart from decoding?

For every worked step `aa+bb=cc.` of a test answer, the probe shows the model the prompt and the answer up to
the step's `=` in the clear, masks everything from the result on (the EOS padding included), and checks the
argmax at each digit of the result. That is the state a one-token-per-step decode reaches when it has written
the operands. Accuracy per operation and digit tells "cannot add" (units digit near 10%) from "adds but
decodes badly"; it is how tiny-arith's first training stage was found to have learned the tens digit of sums
but not the units digit.

    python -m unmask.train.probe unmask/assets/tiny-arith --n 200
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from unmask.bench.tasks import Example, get_task

STEP = re.compile(r"(\d+)([+\-*])(\d+)=(\d+)\.")


def probe_inputs(answer: str, gen_length: int) -> list[tuple[str, str, int, int]]:
    """(operation, clean answer prefix, result start, result length) for each worked step of `answer`."""
    if len(answer) > gen_length:
        raise ValueError(f"answer of {len(answer)} characters exceeds gen_length {gen_length}")
    return [(m.group(2), answer[:m.start(4)], m.start(4), len(m.group(4))) for m in STEP.finditer(answer)]


def masked_row(prompt_ids: list[int], answer_ids: list[int], clean: int, gen_length: int, mask_id: int) -> list[int]:
    """Prompt, the first `clean` answer tokens, then masks to gen_length."""
    return prompt_ids + answer_ids[:clean] + [mask_id] * (gen_length - clean)


@torch.inference_mode()
def digit_accuracy(model: str | Path, n: int = 200, device: str | None = None) -> dict[str, Any]:
    """{"<op> digit <i> of <k>": accuracy, …, "n_steps": …} over the first `n` arith test problems."""
    from unmask.engine.llm import LLM

    llm, task = LLM(model, device=device), get_task("arith")
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    examples: list[Example] = task.examples("test", n)
    n_steps = 0
    for ex in examples:
        prompt_ids = llm.tokenizer.encode(task.prompt(ex), add_special_tokens=False)
        answer_ids = llm.tokenizer.encode(ex.answer, add_special_tokens=False)
        if len(answer_ids) != len(ex.answer):
            raise ValueError(f"{model}: the probe needs a character-level tokenizer")
        for op, _, start, length in probe_inputs(ex.answer, task.gen_length):
            row = masked_row(prompt_ids, answer_ids, start, task.gen_length, llm.spec.mask_id)
            predicted = llm.logits([row])[0, len(prompt_ids):].argmax(-1).tolist()
            for i in range(length):
                key = f"{op} digit {i + 1} of {length}"
                hits[key][0] += int(predicted[start + i] == answer_ids[start + i])
                hits[key][1] += 1
            n_steps += 1
    return {"n_problems": len(examples), "n_steps": n_steps,
            **{k: round(h / total, 4) for k, (h, total) in sorted(hits.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.train.probe", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="checkpoint directory or bundled model name")
    parser.add_argument("--n", type=int, default=200, help="test problems")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    print(json.dumps(digit_accuracy(args.model, args.n, args.device), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
