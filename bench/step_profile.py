"""Where a denoising step's time goes: torch.profiler's kernel table of a whole decode, eager or compiled.

The engine decodes `--batch` random prompts on tiny-arith (prompt 64, gen 64, block 32, 2 tokens per step, as in
bench/step_time.py) once to warm up (and, with `--mode compiled`, to compile), then once under the profiler.
With `--mode compiled` inductor's C++ kernels are recorded one by one (`cpp.enable_kernel_profile`), so the
table names the fused kernels (`cpp_fused_…`) next to the extern ones (`aten::mm`, SDPA).

    python bench/step_profile.py --threads 1 --batch 16 --cache none --mode compiled
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import torch
import torch._inductor.config as inductor_config
from torch.profiler import ProfilerActivity, profile

from unmask import LLM, DecodeConfig
from unmask.engine.engine import Engine
from unmask.models.loader import load_model


def decode(engine: Engine, prompts: list[list[int]], cfg: DecodeConfig) -> tuple[int, float]:
    """(steps, seconds) of decoding every prompt to the end."""
    for p in prompts:
        engine.add_request(p, cfg)
    steps, start = 0, time.perf_counter()
    with torch.inference_mode():
        while engine.has_unfinished():
            engine.step()
            steps += 1
    return steps, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--cache", default="none")
    p.add_argument("--mode", choices=("eager", "compiled"), default="compiled")
    p.add_argument("--rows", type=int, default=20, help="rows of the kernel table")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    inductor_config.cpp.enable_kernel_profile = True
    llm = LLM("tiny-arith", device="cpu")
    model, spec = load_model(llm.path)
    draw = torch.randint(3, model.cfg.vocab_size, (args.batch, 64), generator=torch.Generator().manual_seed(0))
    prompts = torch.where(draw == spec.mask_id, 3, draw).tolist()
    cfg = DecodeConfig(gen_length=64, block_length=32, steps=32, cache=args.cache, stop_at_eos=False)

    def engine() -> Engine:
        return Engine(model, spec, "cpu", max_running=args.batch, context_len=128, compile=args.mode == "compiled")
    decode(engine(), prompts, cfg)                                       # warm-up (and compile)
    steps, seconds = decode(engine(), prompts, cfg)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps, profiled = decode(engine(), prompts, cfg)
    print(f"{args.mode} step, tiny-arith, cache {args.cache}, batch {args.batch}: {seconds / steps * 1000:.1f} ms/NFE "
          f"({profiled / steps * 1000:.1f} under the profiler), {steps} steps; load average {os.getloadavg()}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
