"""Which torch.compile / inductor settings make the model forward faster on this CPU? Side by side, one process.

The compiled runner's `none` step at batch 16 costs no more than the bare compiled forward (engine/runner.py,
bench/step_time.py), so a faster compiled step has to come from a faster compiled forward. This script times
the bare tiny-arith forward (default: 16 rows × 128 positions, logits at the last 64, as a `none` step reads
them) under each candidate and the attention kernel alone under its alternatives:

* `eager`: the model as `load_model` gives it on the CPU;
* `compiled`: `torch.compile(model)`, the runner's setting;
* `freezing`: inductor's `freezing` (weights become constants of the graph; fp32 linears become MKL packed
  `mkl._mkl_linear`). Dynamo reads the flag when it traces, so it is set around every call;
* `cpp_wrapper`, `max_autotune` (inductor's C++ GEMM template against MKL), `no_size_asserts`: inductor options;
* `fused`: q|k|v and gate|up fused (models/fused.py), compiled;
* `transposed`: every Linear weight stored as (in, out) contiguous and applied as `x @ w` (eager and compiled):
  what MKL's sgemm gains from the weight's layout alone.

Every candidate's logits are checked against eager (max |Δ| and argmax equality). Timing: `--calls` rounds, each
calling every candidate once in turn (ABAB at the finest grain, since the machine is shared); medians.

    python bench/compile_options.py --threads 1 --out docs/compile-options-cpu.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
import warnings
from typing import Callable

import torch
import torch._inductor.config as inductor_config
from torch import nn
from torch.nn import functional as F

from unmask import LLM
from unmask.models.cache_view import FullView
from unmask.models.loader import load_model

CANDIDATES = ("eager", "compiled", "freezing", "cpp_wrapper", "max_autotune", "no_size_asserts", "fused",
              "transposed_eager", "transposed_compiled")
OPTIONS = {"freezing": {"freezing": True}, "cpp_wrapper": {"cpp_wrapper": True},
           "max_autotune": {"max_autotune": True}, "no_size_asserts": {"size_asserts": False}}


class TransposedLinear(nn.Module):
    """A Linear whose weight is stored (in, out) contiguous: y = x @ w_t (+ b). Same values as the original."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("w_t", linear.weight.detach().t().contiguous())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.w_t
        return y if self.bias is None else y + self.bias


def transposed(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, TransposedLinear(child))
    return out


def candidate(name: str, model: nn.Module, fused: nn.Module) -> Callable:
    if name == "eager":
        return model
    if name == "transposed_eager":
        return transposed(model)
    if name == "fused":
        # options equal to the defaults, but a distinct dict: equal options share dynamo's cache entry (and its graph)
        return torch.compile(fused, options={"size_asserts": True})
    if name == "transposed_compiled":
        return torch.compile(transposed(model), options={"size_asserts": True, "epilogue_fusion": True})   # defaults
    if name == "compiled":
        return torch.compile(model)
    compiled = torch.compile(model, options=OPTIONS[name])
    if name != "freezing":
        return compiled

    def frozen(*args):
        with inductor_config.patch(freezing=True):   # dynamo lifts the weights as constants only under this flag
            return compiled(*args)
    return frozen


def interleaved(fns: dict[str, Callable], calls: int) -> dict[str, float]:
    """Median ms per candidate over `calls` rounds that call each candidate once in turn."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def forwards(args) -> list[dict]:
    path = LLM("tiny-arith", device="cpu").path
    model, fused = load_model(path)[0], load_model(path, fuse=True)[0]
    b, q, n = args.batch, args.positions, min(args.logits, args.positions)
    ids = torch.randint(3, model.cfg.vocab_size - 1, (b, q), generator=torch.Generator().manual_seed(0))
    pos, at = torch.arange(q).expand(b, q), torch.arange(q - n, q).expand(b, n)
    rows, fns = [], {}
    with torch.inference_mode():
        ref = model(ids, pos, FullView(), at)
        for name in args.candidates.split(","):
            if name not in CANDIDATES:
                raise SystemExit(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")
            start = time.perf_counter()
            fn = candidate(name, model, fused)
            out = fn(ids, pos, FullView(), at)
            rows.append({"candidate": name, "first_call_s": time.perf_counter() - start,
                         "max_abs_diff": (out - ref).abs().max().item(),
                         "argmax_equal": bool((out.argmax(-1) == ref.argmax(-1)).all())})
            fns[name] = (lambda fn=fn: fn(ids, pos, FullView(), at))
        for fn in fns.values():
            fn()
        ms = interleaved(fns, args.calls)
    for row in rows:
        row["ms"] = ms[row["candidate"]]
        row["eager_over_this"] = ms["eager"] / row["ms"] if "eager" in ms else None
    return rows


def attention(args) -> list[dict]:
    """The attention kernel alone at the forward's shape: aten SDPA (what eager and inductor both call) against
    an explicit softmax(q kᵀ) v compiled with the pattern matcher off (else inductor turns it back into SDPA)
    and flex_attention compiled (inductor's C++ attention template)."""
    from torch.nn.attention.flex_attention import flex_attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(args.batch, 4, args.positions, 32, generator=g) for _ in range(3))

    def explicit(q, k, v):
        return ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(-1) @ v
    fns = {"sdpa": F.scaled_dot_product_attention,
           "explicit_compiled": torch.compile(explicit, options={"pattern_matcher": False}),
           "flex_compiled": torch.compile(flex_attention)}
    ref = F.scaled_dot_product_attention(q, k, v)
    with torch.inference_mode():
        diffs = {name: (fn(q, k, v) - ref).abs().max().item() for name, fn in fns.items()}
        ms = interleaved({name: (lambda fn=fn: fn(q, k, v)) for name, fn in fns.items()}, args.calls)
    return [{"kernel": name, "ms": ms[name], "max_abs_diff": diffs[name]} for name in fns]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--positions", type=int, default=128)
    p.add_argument("--logits", type=int, default=64, help="positions whose logits are computed (the last ones)")
    p.add_argument("--calls", type=int, default=30, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import torch._dynamo as dynamo
    dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)   # one graph of the forward per candidate
    fwd = forwards(args)
    print("| candidate | ms | eager / this | first call s | max abs diff | argmax equal |\n|---|---|---|---|---|---|")
    for r in fwd:
        ratio = f"{r['eager_over_this']:.2f}×" if r["eager_over_this"] else "-"
        print(f"| {r['candidate']} | {r['ms']:.1f} | {ratio} | {r['first_call_s']:.0f} | {r['max_abs_diff']:.1e} "
              f"| {r['argmax_equal']} |")
    att = attention(args)
    print(f"\nattention alone, ({args.batch}, 4, {args.positions}, 32):")
    for r in att:
        print(f"  {r['kernel']:18s} {r['ms']:.2f} ms  max abs diff {r['max_abs_diff']:.1e}")
    print("load average", os.getloadavg())
    if args.out:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg(),
                "args": vars(args)}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "forward": fwd, "attention": att}, f, indent=1)


if __name__ == "__main__":
    main()
