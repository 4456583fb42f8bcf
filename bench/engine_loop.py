"""The scheduler's own cost, without HTTP: the Engine fed in-process like a closed loop at concurrency c
(a new request is added as each one finishes) vs offline `LLM.generate` in batches of c, same prompts.

    python bench/engine_loop.py --preset fast-dllm --concurrency 32
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import arith_prompts  # noqa: E402

from unmask import LLM  # noqa: E402


def offline(llm: LLM, ids: list[list[int]], config, batch: int) -> tuple[int, float]:
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(ids), batch):
        tokens += sum(len(c.token_ids) for c in llm.generate(ids[i:i + batch], config))
    return tokens, time.perf_counter() - start


def closed_loop(llm: LLM, ids: list[list[int]], config, concurrency: int) -> tuple[int, float]:
    engine = llm.make_engine(max_running=2 * concurrency, prompt_bucket=True)
    start, tokens, sent = time.perf_counter(), 0, 0
    for _ in range(min(concurrency, len(ids))):
        engine.add_request(ids[sent], config)
        sent += 1
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                if out.finished:
                    tokens += len(out.completion.token_ids)
                    if sent < len(ids):
                        engine.add_request(ids[sent], config)
                        sent += 1
    return tokens, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny-arith")
    p.add_argument("--preset", default="fast-dllm")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--prompts", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    llm = LLM(args.model, device="cpu")
    config = llm.resolve_config(args.preset)
    ids = llm.encode(arith_prompts(args.prompts))
    offline(llm, ids[:args.concurrency], config, args.concurrency)   # warm-up
    for _ in range(args.repeats):
        for name, run in (("offline", offline), ("engine closed loop", closed_loop)):
            tokens, wall = run(llm, ids, config, args.concurrency)
            print(f"{args.preset:10s} {name:20s} c={args.concurrency:3d} {tokens / wall:8.1f} tokens/s "
                  f"({wall:.2f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
