"""Fast-dLLM v2 sub-block decoding on tiny-arith-bd (model blocks of 16), side by side in one run: threshold 0.9
(+ the best) per decode block of 16 (the whole model block), 8 and 4 (sub-blocks), each with the exact
`block-causal` cache and without a cache, on the same unseen arith problems.

Per config: accuracy, mean NFE, positions × layers computed per generated token (Completion.computed), and
whether the tokens equal those of cache 'none'. CPU wall time is printed but is not the claim (2 shared cores).
The last stdout line is the JSON record.

    python bench/sub_blocks.py --n 200 --threads 1 --out bench/results/sub_blocks.json
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

DECODE_BLOCKS = (16, 8, 4)
CACHES = ("none", "block-causal")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="unseen test problems")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the JSON record here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task, llm = get_task("arith"), LLM("tiny-arith-bd")
    examples = task.examples("test", args.n)
    rows = []
    for block in DECODE_BLOCKS:
        plain = None
        for cache in CACHES:
            cfg = DecodeConfig(gen_length=task.gen_length, block_length=block, commit="threshold", threshold=0.9,
                               alg="confidence", cache=cache)
            row, ids = run_config(llm, task, examples, cfg, args.batch)
            plain = ids if cache == "none" else plain
            rows.append({"decode_block": block, "cache": cache, **row, "tokens_equal_none": ids == plain})
    print_table(rows, [("decode_block", "decode block", "<14"), ("cache", "cache", "<14"),
                       ("accuracy", "accuracy", ">9.3f"), ("mean_nfe", "NFE", ">7.1f"),
                       ("positions_x_layers_per_token", "pos×layers/token", ">18.0f"), ("tokens_equal_none", "= none", ">8"),
                       ("seconds", "s", ">7.1f")])
    write_record(rows, len(examples), args.threads, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
