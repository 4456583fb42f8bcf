"""ms per NFE of the engine's denoising step, eager vs a torch.compile'd model forward, beside the bare forward.

For each model, cache and batch size, one run measures side by side:
* eager: the engine decoding `--batch` random prompts (fixed 2 tokens per step), time / steps;
* compiled: the same with the model wrapped in `torch.compile(dynamic=True)` (compile time reported apart;
  the tokens are checked equal to eager's);
* floor: the bare model forward on the positions the cache computes per step (its mean query length), with
  no cache bookkeeping: what the step would cost if everything but the transformer were free.

    python bench/step_time.py                                     # tiny-arith, none/prefix/dual, batch 1 and 16
    python bench/step_time.py --models tiny-arith,llada-100m --batches 1 --out docs/step-time.json

`llada-100m` is a random LLaDA-shaped model (d_model 768, 12 layers, 12 heads, SwiGLU 2048, vocab 8192;
≈ 98M parameters) built in memory. Ratios are what this script is for; absolute times only mean something on
an otherwise idle machine, and GPU numbers come only from a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from unmask import LLM, DecodeConfig
from unmask.engine.engine import Engine
from unmask.models.cache_view import FullView
from unmask.models.loader import parse_config
from unmask.models.transformer import DecoderLM

LLADA_100M = {"architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": 768, "n_heads": 12,
              "n_kv_heads": 12, "n_layers": 12, "mlp_hidden_size": 2048, "vocab_size": 8192,
              "embedding_size": 8192, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": False,
              "mask_token_id": 8191, "eos_token_id": 1, "pad_token_id": 0, "max_sequence_length": 4096}


def load(name: str):
    if name == "llada-100m":
        arch, spec, _ = parse_config(LLADA_100M)
        torch.manual_seed(0)
        return DecoderLM(arch).eval(), spec
    llm = LLM(name, device="cpu")
    return llm.model, llm.spec


def decode(model, spec, prompts: list[list[int]], cfg: DecodeConfig) -> tuple[list[list[int]], int, float, float]:
    """(tokens per row, steps, seconds, mean positions computed per step and row)."""
    engine = Engine(model, spec, "cpu", max_running=len(prompts))
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
    per_step = sum(c.computed for c in comps) / sum(c.nfe for c in comps) / len(model.layers)
    return [c.token_ids for c in comps], steps, seconds, per_step


def bare_forward_ms(model, batch: int, q: int, vocab: int, repeats: int) -> float:
    ids = torch.randint(3, vocab - 1, (batch, q))
    pos = torch.arange(q).expand(batch, q)
    with torch.inference_mode():
        model(ids, pos, FullView(), None)
        start = time.perf_counter()
        for _ in range(repeats):
            model(ids, pos, FullView(), None)
    return (time.perf_counter() - start) / repeats * 1000


def measure(name: str, cache: str, batch: int, args) -> dict:
    model, spec = load(name)
    vocab = model.cfg.vocab_size
    g = torch.Generator().manual_seed(batch)
    draw = torch.randint(3, vocab, (batch, args.prompt), generator=g)
    prompts = torch.where(draw == spec.mask_id, 3, draw).tolist()            # random tokens, never [MASK]
    cfg = DecodeConfig(gen_length=args.gen, block_length=args.block, steps=args.gen // 2, cache=cache,
                       stop_at_eos=False)
    decode(model, spec, prompts, cfg)                                        # warm-up
    tokens, steps, eager_s, q = decode(model, spec, prompts, cfg)
    compiled = torch.compile(model, dynamic=True)
    start = time.perf_counter()
    decode(compiled, spec, prompts, cfg)                                     # compiles
    compile_s = time.perf_counter() - start
    c_tokens, c_steps, compiled_s, _ = decode(compiled, spec, prompts, cfg)
    floor = bare_forward_ms(model, batch, max(1, round(q)), vocab, args.repeats)
    return {"model": name, "cache": cache, "batch": batch, "steps": steps, "positions_per_step": round(q, 1),
            "eager_ms_per_nfe": eager_s / steps * 1000, "compiled_ms_per_nfe": compiled_s / c_steps * 1000,
            "floor_ms_per_nfe": floor, "compile_s": compile_s, "tokens_equal": tokens == c_tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny-arith")
    p.add_argument("--caches", default="none,prefix,dual")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(m, c, int(b), args) for m in args.models.split(",") for c in args.caches.split(",")
            for b in args.batches.split(",")]
    print("| model | cache | batch | positions/step | eager ms/NFE | compiled ms/NFE | floor ms/NFE | compile s | same tokens |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['cache']} | {r['batch']} | {r['positions_per_step']} | {r['eager_ms_per_nfe']:.2f} "
              f"| {r['compiled_ms_per_nfe']:.2f} | {r['floor_ms_per_nfe']:.2f} | {r['compile_s']:.0f} | {r['tokens_equal']} |")
    if args.out:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or
                platform.machine(), "args": vars(args)}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
