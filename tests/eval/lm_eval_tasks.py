"""A small local lm_eval task set on the arith test split: one task per request type, no network."""
from __future__ import annotations

import json
from pathlib import Path

from unmask.bench.tasks import get_task

TASKS = ("unmask_arith_gen", "unmask_arith_choice", "unmask_arith_rolling")
GEN = """task: unmask_arith_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}\\n"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: ["<|eos|>"]
filter_list:
  - name: answer
    filter:
      - function: regex
        regex_pattern: "#### (\\\\d+)"
      - function: take_first
metric_list:
  - metric: exact_match
"""
CHOICE = """task: unmask_arith_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\n"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: 0
target_delimiter: ""
metric_list:
  - metric: acc
"""
ROLLING = """task: unmask_arith_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: word_perplexity
"""


def wrong_answer(answer: str) -> str:
    """The worked answer with its final number changed (a near miss)."""
    head, _, number = answer.rpartition("#### ")
    return f"{head}#### {int(number) + 11}"


def write_task_dir(root: Path, n: int = 4) -> Path:
    """Write data.jsonl and the three task YAMLs into `root`; return it (an lm_eval include_path)."""
    examples = get_task("arith").examples("test", n)
    rows = [{"question": e.question, "target": e.target, "answer": e.answer,
             "choices": [e.answer, wrong_answer(e.answer)]} for e in examples]
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, text in zip(TASKS, (GEN, CHOICE, ROLLING)):
        (root / f"{name}.yaml").write_text(text.format(data=data))
    return root
