"""Block diffusion vs full attention, side by side in one run: tiny-arith-bd (BD3-LM, blocks of 16) decoded with
the exact `block-causal` cache against tiny-arith (LLaDA-style, bidirectional) with Fast-dLLM's `dual` cache,
each also without a cache, on the same unseen arith problems and the same commit rules.

Per config: accuracy, mean NFE, and positions × layers the model computed per generated token (the cost
counter of Completion.computed, prompt included; completion-only tokens up to EOS). CPU wall time is printed
but is not the claim (2 shared cores). The last stdout line is the JSON record.

    python bench/block_diffusion.py --n 200 --threads 1 --out bench/results/block_diffusion.json
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

RULES = {"1/step": {"commit": "linear", "steps": 48}, "t=0.9": {"commit": "threshold", "threshold": 0.9}}
MODELS = {"tiny-arith": ("none", "dual"), "tiny-arith-bd": ("none", "block-causal")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="unseen test problems")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the JSON record here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("arith")
    examples = task.examples("test", args.n)
    rows = []
    for model, caches in MODELS.items():
        llm = LLM(model)
        for rule, knobs in RULES.items():
            for cache in caches:
                cfg = DecodeConfig(gen_length=task.gen_length, block_length=16, cache=cache, **knobs)
                rows.append({"model": model, "rule": rule, "cache": cache,
                             **run_config(llm, task, examples, cfg, args.batch)[0]})
    print_table(rows, [("model", "model", "<15"), ("rule", "rule", "<8"), ("cache", "cache", "<14"),
                       ("accuracy", "accuracy", ">9.3f"), ("mean_nfe", "NFE", ">7.1f"),
                       ("positions_x_layers_per_token", "pos×layers/token", ">18.0f"), ("seconds", "s", ">7.1f")])
    write_record(rows, len(examples), args.threads, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
