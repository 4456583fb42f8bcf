"""ms per NFE of the engine's denoising step: eager vs the compiled runner, beside the bare forward floor.

For each model, cache and batch size, one run measures side by side (weights as `load_model` gives them on the
CPU: not fused):
* eager: the engine decoding `--batch` random prompts (fixed 2 tokens per step), time / steps;
* compiled: the same engine with `compile=True` (engine/runner.py: forward, sampler, scores and commit as one
  `fullgraph=True` graph); compile time reported apart, tokens checked equal to eager's;
* bare forward, eager and compiled: the model forward alone on the positions the cache computes per step (its
  mean query length; logits for at most gen_length of them), no cache, no sampling: what a step would cost if
  everything else were free;
* fused: the bare eager forward with q|k|v and gate|up fused into one matmul each (models/fused.py; the
  default on CUDA), to see whether fusion pays here.

Each of `--repeats` rounds runs an eager decode, a compiled decode and the three bare forwards (medians of
`--forwards` calls) back to back (ABAB…), and the medians over rounds are reported, because the CPU may be
shared with other work; "(per round)" is the median of each round's own eager / compiled ratio.

    python bench/step_time.py --threads 1 --out docs/step-time-cpu.json          # tiny-arith + llada-100m
    python bench/step_time.py --models tiny-arith --batches 16 --caches none

`llada-100m` is a random LLaDA-shaped model (d_model 768, 12 layers, 12 heads, SwiGLU 2048, vocab 8192;
≈ 98M parameters) built in memory. Ratios are what this script is for; GPU numbers come only from a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import torch

from unmask import LLM, DecodeConfig
from unmask.engine.engine import Engine
from unmask.models.cache_view import FullView
from unmask.models.fused import fuse_projections
from unmask.models.loader import load_model, parse_config
from unmask.models.transformer import DecoderLM

LLADA_100M = {"architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": 768, "n_heads": 12,
              "n_kv_heads": 12, "n_layers": 12, "mlp_hidden_size": 2048, "vocab_size": 8192,
              "embedding_size": 8192, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": False,
              "mask_token_id": 8191, "eos_token_id": 1, "pad_token_id": 0, "max_sequence_length": 4096}


def load(name: str, fused: bool = False):
    if name == "llada-100m":
        arch, spec, _ = parse_config(LLADA_100M)
        torch.manual_seed(0)
        model = DecoderLM(arch).eval().requires_grad_(False)
        return (fuse_projections(model) if fused else model), spec
    llm = LLM(name, device="cpu")
    return load_model(llm.path, fuse=fused)[0], llm.spec


def decode(engine: Engine, prompts: list[list[int]], cfg: DecodeConfig) -> tuple[list[list[int]], int, float, float]:
    """(tokens per row, steps, seconds, mean positions computed per step and row)."""
    ids = [engine.add_request(p, cfg) for p in prompts]
    done, steps, start = {}, 0, time.perf_counter()
    with torch.inference_mode():
        while engine.has_unfinished():
            steps += 1
            for out in engine.step():
                if out.finished:
                    done[out.request_id] = out.completion
    seconds = time.perf_counter() - start
    comps = [done[i] for i in ids]
    per_step = sum(c.computed for c in comps) / sum(c.nfe for c in comps) / engine.model.cfg.n_layers
    return [c.token_ids for c in comps], steps, seconds, per_step


def forward_ms(model, batch: int, q: int, gen: int, vocab: int, calls: int) -> float:
    """Median ms of a bare forward of `batch` rows × `q` positions with logits at the last min(q, gen) of them,
    as a step reads them (after two warm-up calls)."""
    ids = torch.randint(3, vocab - 1, (batch, q))
    pos = torch.arange(q).expand(batch, q)
    logits_at = torch.arange(q - min(q, gen), q).expand(batch, min(q, gen))
    times = []
    with torch.inference_mode():
        for i in range(calls + 2):
            start = time.perf_counter()
            model(ids, pos, FullView(), logits_at)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(name: str, cache: str, batch: int, args) -> dict:
    model, spec = load(name)
    vocab = model.cfg.vocab_size
    g = torch.Generator().manual_seed(batch)
    draw = torch.randint(3, vocab, (batch, args.prompt), generator=g)
    prompts = torch.where(draw == spec.mask_id, 3, draw).tolist()            # random tokens, never [MASK]
    cfg = DecodeConfig(gen_length=args.gen, block_length=args.block, steps=args.gen // 2, cache=cache,
                       stop_at_eos=False)
    context = args.prompt + args.gen

    def eager():
        return Engine(model, spec, "cpu", max_running=batch, context_len=context)

    def compiled():
        return Engine(model, spec, "cpu", max_running=batch, context_len=context, compile=True)

    tokens, steps, _, q = decode(eager(), prompts, cfg)                       # warm-up
    start = time.perf_counter()
    engine = compiled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c_tokens, c_steps, _, _ = decode(engine, prompts, cfg)               # compiles
    compile_s = time.perf_counter() - start
    q_int = max(1, round(q))
    bare_compiled = torch.compile(model)
    fused = load(name, fused=True)[0]
    forward_ms(bare_compiled, batch, q_int, args.gen, vocab, 1)                # compiles
    eager_ms, compiled_ms, eager_fwd, compiled_fwd, fused_fwd = [], [], [], [], []
    for _ in range(args.repeats):   # ABAB: every measurement of a round runs back to back under the same load
        _, s, sec, _ = decode(eager(), prompts, cfg)
        eager_ms.append(sec / s * 1000)
        _, s, sec, _ = decode(compiled(), prompts, cfg)
        compiled_ms.append(sec / s * 1000)
        eager_fwd.append(forward_ms(model, batch, q_int, args.gen, vocab, args.forwards))
        compiled_fwd.append(forward_ms(bare_compiled, batch, q_int, args.gen, vocab, args.forwards))
        fused_fwd.append(forward_ms(fused, batch, q_int, args.gen, vocab, args.forwards))
    med = statistics.median
    return {"model": name, "cache": cache, "batch": batch, "steps": steps, "positions_per_step": round(q, 1),
            "eager_ms_per_nfe": med(eager_ms), "compiled_ms_per_nfe": med(compiled_ms),
            "eager_ms_runs": eager_ms, "compiled_ms_runs": compiled_ms,
            "bare_eager_forward_ms": med(eager_fwd), "bare_compiled_forward_ms": med(compiled_fwd),
            "bare_fused_eager_forward_ms": med(fused_fwd),
            "compile_s": compile_s, "tokens_equal": tokens == c_tokens and steps == c_steps,
            "fallbacks": {"/".join(k): v for k, v in engine.runner.fallbacks.items()}}


def paired_ratio(row: dict) -> float:
    """Median over rounds of eager / compiled within the round: the two decodes of a round run back to back, so
    this ratio is less exposed than the ratio of medians to load that changes between rounds."""
    return statistics.median(e / c for e, c in zip(row["eager_ms_runs"], row["compiled_ms_runs"]))


def table(rows: list[dict]) -> str:
    lines = ["| model | cache | batch | positions/step | eager ms/NFE | compiled ms/NFE | eager / compiled "
             "(per round) | bare fwd eager (fused) | bare fwd compiled | compiled step / bare compiled | compile s "
             "| same tokens |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['cache']} | {r['batch']} | {r['positions_per_step']} | {r['eager_ms_per_nfe']:.1f} "
            f"| {r['compiled_ms_per_nfe']:.1f} | {r['eager_ms_per_nfe'] / r['compiled_ms_per_nfe']:.2f}× "
            f"({paired_ratio(r):.2f}×) "
            f"| {r['bare_eager_forward_ms']:.1f} ({r['bare_fused_eager_forward_ms']:.1f}) "
            f"| {r['bare_compiled_forward_ms']:.1f} "
            f"| {r['compiled_ms_per_nfe'] / r['bare_compiled_forward_ms']:.2f}× | {r['compile_s']:.0f} "
            f"| {r['tokens_equal']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny-arith,llada-100m")
    p.add_argument("--caches", default="none,prefix,dual")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="ABAB pairs of eager / compiled decodes")
    p.add_argument("--forwards", type=int, default=5, help="bare forwards per median")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for m in args.models.split(","):
        for c in args.caches.split(","):
            for b in args.batches.split(","):
                rows.append(measure(m, c, int(b), args))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
                if args.out:   # after every row: a long run cut short keeps what it measured
                    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                            "cpu": platform.processor() or platform.machine(),
                            "load_average": os.getloadavg(), "args": vars(args)}
                    with open(args.out, "w") as f:
                        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
