"""Test-split accuracy of a trained checkpoint under a few decoding recipes, through the public `LLM` API.

Recipes (gen_length = the task's): `llada` = one token per step (steps = gen_length, semi-AR blocks of
`block_length`, low-confidence order; arXiv 2502.09992), `fast-dllm` = confidence threshold 0.9 in blocks of
`block_length` (arXiv 2505.22618), `one-shot` = every token in a single step (steps 1, one block), `steps-N` = N
forwards for the whole answer (one block, N tokens' quota per step: the few-step regime of Di4C). Every recipe
uses seed 0 (greedy decoding draws nothing; a λ-conditioned model draws its λ from it).

    python -m unmask.train.evaluate unmask/assets/tiny-arith --task arith --n 500 --block-length 16
    python -m unmask.train.evaluate unmask/assets/tiny-arith-ar --task arith --n 500   (causal: greedy AR decoding)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from unmask.bench.tasks import Task, get_task
from unmask.config import DecodeConfig

RECIPES = ("llada", "fast-dllm", "one-shot")


def recipe(name: str, gen_length: int, block_length: int) -> DecodeConfig:
    if name == "llada":
        return DecodeConfig.preset("llada", gen_length=gen_length, steps=gen_length, block_length=block_length, seed=0)
    if name == "fast-dllm":
        return DecodeConfig.preset("fast-dllm", gen_length=gen_length, block_length=block_length, threshold=0.9,
                                   seed=0)
    if name == "one-shot":
        return DecodeConfig.preset("llada", gen_length=gen_length, steps=1, block_length=gen_length, seed=0)
    if name.startswith("steps-") and name[6:].isdigit() and 1 <= int(name[6:]) <= gen_length:
        return DecodeConfig.preset("llada", gen_length=gen_length, steps=int(name[6:]), block_length=gen_length, seed=0)
    raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)} or steps-N (1 ≤ N ≤ {gen_length})")


def score(model: str | Path, task: Task, n: int, recipes: tuple[str, ...] = RECIPES, block_length: int = 16,
          device: str | None = None, batch: int = 250) -> dict[str, Any]:
    """{"<recipe>/accuracy", "<recipe>/mean_nfe", "<recipe>/seconds"} on the first `n` test examples."""
    from unmask.engine.llm import LLM  # the facade; train never imports the engine's runner

    llm = LLM(model, device=device)
    examples = task.examples("test", n)
    out: dict[str, Any] = {"n": len(examples), "block_length": block_length}
    for name in recipes:
        cfg, correct, nfe, t0 = recipe(name, task.gen_length, block_length), 0.0, 0, time.perf_counter()
        for i in range(0, len(examples), batch):
            chunk = examples[i:i + batch]
            for ex, done in zip(chunk, llm.generate([task.prompt(ex) for ex in chunk], cfg)):
                correct += task.score(ex, done.text)
                nfe += done.nfe
        out[f"{name}/accuracy"] = correct / len(examples)
        out[f"{name}/mean_nfe"] = nfe / len(examples)
        out[f"{name}/seconds"] = time.perf_counter() - t0
    return out


def score_ar(model: str | Path, task: Task, n: int, device: str | None = None, batch: int = 250) -> dict[str, Any]:
    """Plain greedy AR decoding of a causal checkpoint: {"ar-greedy/accuracy", ".../forwards_per_token", ...}."""
    import torch

    from unmask.engine.autoregressive import ARModel, greedy  # the engine's AR path; train never imports the runner
    from unmask.engine.llm import pick_device

    ar, tokenizer = ARModel.load(model, pick_device(device), torch.float32)
    examples = task.examples("test", n)
    correct, forwards, tokens, t0 = 0.0, 0, 0, time.perf_counter()
    for i in range(0, len(examples), batch):
        chunk = examples[i:i + batch]
        prompts = [tokenizer.encode(task.prompt(ex), add_special_tokens=False) for ex in chunk]
        for ex, (ids, nfe) in zip(chunk, greedy(ar, prompts, task.gen_length)):
            text = tokenizer.decode([t for t in ids if t not in ar.spec.eos_ids])
            correct += task.score(ex, text)
            forwards += nfe
            tokens += len(ids)
    return {"n": len(examples), "ar-greedy/accuracy": correct / len(examples),
            "ar-greedy/mean_nfe": forwards / len(examples), "ar-greedy/forwards_per_token": forwards / max(tokens, 1),
            "ar-greedy/seconds": time.perf_counter() - t0}


def evaluate(out_dir: str | Path, cfg: Any, n: int, presets: tuple[str, ...] = RECIPES) -> dict[str, Any]:
    """Score the checkpoint in a training run's `out_dir` on its own task's test split."""
    from unmask.train.checkpoint import make_task

    device = None if cfg.device == "auto" else cfg.device
    if getattr(cfg, "objective", "mdlm") == "ar":   # a causal model decodes left to right, not by unmasking
        return score_ar(out_dir, make_task(cfg), n, device)
    if getattr(cfg, "objective", "mdlm") == "bd3":   # one block of gen_length does not fit the model's blocks
        presets = tuple(p for p in presets if p != "one-shot")
    return score(out_dir, make_task(cfg), n, presets, cfg.eval_block_length, device)


def is_autoregressive(model: str | Path) -> bool:
    from unmask.models.loader import parse_config, read_config
    from unmask.models.resolve import resolve_model

    return parse_config(read_config(resolve_model(model)))[1].autoregressive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.train.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="checkpoint directory or bundled model name")
    parser.add_argument("--task", default="arith")
    parser.add_argument("--n", type=int, default=500, help="test problems")
    parser.add_argument("--block-length", type=int, default=16)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    task = get_task(args.task)
    if is_autoregressive(args.model):   # a causal model (a verifier) decodes by plain greedy AR decoding
        result = score_ar(args.model, task, args.n, args.device)
    else:
        result = score(args.model, task, args.n, tuple(args.recipes.split(",")), args.block_length, args.device)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
