"""Step distillation, teacher and student side by side in one run: tiny-arith (the teacher) and
tiny-arith-dparallel (dParallel certainty forcing, `unmask distill`) on the same unseen arith problems and
the same decode configs (gen_length 48, no cache):

  llada       one token per step, blocks of 16 (steps 48)
  fast-dllm   confidence threshold 0.9, blocks of 16
  dparallel   entropy threshold 0.5 nats (alg entropy), blocks of 16 — dParallel's decoder
  t=0.9/48    confidence threshold 0.9, one block of 48
  H<0.5/48    entropy threshold 0.5 nats, one block of 48
  one-shot    every token in one forward (steps 1, one block of 48)

Per config: accuracy, mean NFE, tokens per forward (completion tokens up to EOS ÷ NFE) and CPU seconds
(2 shared cores: not the claim). The last stdout line is the JSON record.

    python bench/distill.py --n 500 --threads 1 --out bench/results/distill.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arith_runs import print_table, run_config, write_record  # noqa: E402

from unmask import LLM, DecodeConfig  # noqa: E402
from unmask.bench.tasks import get_task  # noqa: E402

CONFIGS = {
    "llada": {"commit": "linear", "steps": 48, "block_length": 16},
    "fast-dllm": {"commit": "threshold", "threshold": 0.9, "block_length": 16},
    "dparallel": {"commit": "entropy-threshold", "threshold": 0.5, "alg": "entropy", "block_length": 16},
    "t=0.9/48": {"commit": "threshold", "threshold": 0.9, "block_length": 48},
    "H<0.5/48": {"commit": "entropy-threshold", "threshold": 0.5, "alg": "entropy", "block_length": 48},
    "one-shot": {"commit": "linear", "steps": 1, "block_length": 48},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=500, help="unseen test problems")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="tiny-arith,tiny-arith-dparallel", help="teacher first, then students")
    p.add_argument("--out", default=None, help="also write the JSON record here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("arith")
    examples = task.examples("test", args.n)
    rows = []
    for model in args.models.split(","):
        llm = LLM(model)
        for name, knobs in CONFIGS.items():
            cfg = DecodeConfig(gen_length=task.gen_length, **knobs)
            stats, ids = run_config(llm, task, examples, cfg, args.batch)
            tokens = sum(max(1, len(t)) for t in ids)
            rows.append({"model": model, "config": name, **knobs, **stats,
                         "tokens_per_forward": tokens / (stats["mean_nfe"] * len(examples))})
    print_table(rows, [("model", "model", "<22"), ("config", "config", "<11"), ("accuracy", "accuracy", ">9.3f"),
                       ("mean_nfe", "NFE", ">7.2f"), ("tokens_per_forward", "tok/fwd", ">9.2f"),
                       ("seconds", "s", ">7.1f")])
    write_record(rows, len(examples), args.threads, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
