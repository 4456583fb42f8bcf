"""The runner's K/V slot pool vs each group's own K/V tensors, side by side, in a closed loop.

The engine is fed like a server at concurrency c (a new request as each finishes, so rows join and leave all
the time, and block-refreshing rows split off and merge back), once with the runner's pool (K/V stay in their
slots; a group reads a narrow() view when its slots are a run, else gathers its rows each layer) and once with
the pool switched off (each group's cache holds and re-indexes its own K/V on every join/leave/split/merge).
Rounds alternate (ABAB…) and medians are reported, since the CPU is shared; tokens are checked equal.

    python bench/kv_pool.py --threads 1 --concurrency 16 --prompts 64 --presets fast-dllm fast-dllm-dual
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import arith_prompts  # noqa: E402

from unmask import LLM  # noqa: E402


def closed_loop(llm: LLM, ids: list[list[int]], config, concurrency: int, pooled: bool) -> dict:
    """Decode `ids` at `concurrency` rows at a time; wall time, engine steps, tokens, and which share of the
    pooled layer reads found their rows' slots as one run (a view of the pool, no gather)."""
    engine = llm.make_engine(max_running=concurrency, prompt_bucket=True, context_len=llm.spec.context_len)
    reads = {"view": 0, "gather": 0}   # pooled layer reads of cached K/V: a view of a run of slots, or a gather
    if pooled:
        rows = engine.runner.pool.rows

        def counted(index, slots, length, dtype):
            reads["view" if slots.start is not None else "gather"] += 1
            return rows(index, slots, length, dtype)
        engine.runner.pool.rows = counted
    else:
        engine.runner.pool = None   # before any request: every cache keeps its own K/V
    sent, order, done = 0, [], {}
    for _ in range(min(concurrency, len(ids))):
        order.append(engine.add_request(ids[sent], config))
        sent += 1
    start = time.perf_counter()
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                if out.finished:
                    done[out.request_id] = out.completion.token_ids
                    if sent < len(ids):
                        order.append(engine.add_request(ids[sent], config))
                        sent += 1
    wall = time.perf_counter() - start
    return {"seconds": wall, "steps": engine.stats.steps, "tokens": [done[r] for r in order],
            "view_fraction": reads["view"] / max(1, reads["view"] + reads["gather"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny-arith")
    p.add_argument("--presets", nargs="+", default=["fast-dllm", "fast-dllm-dual"])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    llm = LLM(args.model, device="cpu")
    ids = llm.encode(arith_prompts(args.prompts))
    rows = []
    for preset in args.presets:
        config = llm.resolve_config(preset)
        closed_loop(llm, ids[:args.concurrency], config, args.concurrency, True)   # warm-up
        times, same = {True: [], False: []}, True
        for _ in range(args.repeats):
            results = {pooled: closed_loop(llm, ids, config, args.concurrency, pooled) for pooled in (True, False)}
            for pooled, r in results.items():
                times[pooled].append(r["seconds"] * 1000 / r["steps"])
            same = same and results[True]["tokens"] == results[False]["tokens"]
        row = {"preset": preset, "concurrency": args.concurrency, "prompts": args.prompts,
               "pool_ms_per_step": statistics.median(times[True]), "own_ms_per_step": statistics.median(times[False]),
               "rounds_pool": times[True], "rounds_own": times[False], "steps": results[True]["steps"],
               "cached_reads_by_view": results[True]["view_fraction"], "same_tokens": same}
        row["own_over_pool"] = row["own_ms_per_step"] / row["pool_ms_per_step"]
        rows.append(row)
        print(f"{preset:16s} c={args.concurrency:3d}  pool {row['pool_ms_per_step']:7.1f} ms/step  own "
              f"{row['own_ms_per_step']:7.1f} ms/step  own/pool {row['own_over_pool']:.2f}×  cached K/V read as a "
              f"view {row['cached_reads_by_view']:.0%} (else gathered)  same tokens {same}", flush=True)
    if args.out:
        meta = {"model": args.model, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "repeats": args.repeats}
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
