"""The model card (README.md) written beside the weights of a `unmask train` run: how to reproduce it, what it scores."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

import torch

from unmask.train.evaluate import RECIPES


def hardware(threads: int = 0) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"CPU: {cpu}, {threads or torch.get_num_threads()} torch threads ({os.cpu_count()} cores visible)"


def n_params(out: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def accuracy_rows(ev: dict[str, Any]) -> list[str]:
    rows = ["| recipe | decode config | accuracy | mean NFE |", "|---|---|---|---|"]
    describe = {"llada": f"llada preset, steps=gen_length, block_length={ev.get('block_length')}",
                "fast-dllm": f"fast-dllm preset, threshold 0.9, block_length={ev.get('block_length')}",
                "one-shot": "llada preset, steps=1, block_length=gen_length (all tokens at once)"}
    describe["ar-greedy"] = "plain greedy autoregressive decoding, KV cache (engine/autoregressive.py)"
    few = sorted((k.split("/")[0] for k in ev if k.startswith("steps-") and k.endswith("/accuracy")),
                 key=lambda name: int(name[6:]))
    describe.update({name: f"llada preset, steps={name[6:]}, block_length=gen_length" for name in few})
    for name in RECIPES + tuple(few) + ("ar-greedy",):
        if f"{name}/accuracy" in ev:
            rows.append(f"| {name} | {describe[name]} | {ev[f'{name}/accuracy']:.3f} | {ev[f'{name}/mean_nfe']:.1f} |")
    return rows


def model_kind(cfg: Any) -> tuple[str, str]:
    """(what the model is, what it was trained with) for the card's first line."""
    if getattr(cfg, "objective", "mdlm") == "ar":
        return ("causal (autoregressive) language model (config.json `\"is_causal\": true`",
                "a next-token objective (train/ar.py)")
    return "masked-diffusion model (bidirectional", "the LLaDA SFT objective (arXiv 2502.09992)"


def objective_line(cfg: Any) -> str:
    if getattr(cfg, "objective", "mdlm") == "ar":
        return ("- objective: next-token cross-entropy on every answer token and the first EOS (the prompt is context "
                "only, EOS padding after the first EOS unsupervised), mean over the batch's targets; causal attention")
    return (f"- objective: t ~ stratified U(0,1), p = (1-{cfg.mask_eps})t + {cfg.mask_eps}, answer + EOS padding masked "
            f"with probability p, CE/p summed per row ÷ answer length, mean over the batch"
            + (f"; answer-prefix conditioning on {cfg.prefix_prob:.0%} of rows (a clean answer prefix "
               "of random length joins the prompt)" if cfg.prefix_prob else ""))


NOTES = "card_notes.md"  # optional hand-written notes in the run directory, appended to the card


def save_card(out: Path, lines: list[str]) -> Path:
    """Write `lines` as out/README.md, with the run directory's hand-written notes (NOTES) appended."""
    if (out / NOTES).is_file():
        lines = [*lines, "## Notes", "", (out / NOTES).read_text().strip(), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def dtype_used(cfg: Any) -> str:
    from unmask.train.mdlm import train_device, uses_autocast

    return "bf16 autocast" if uses_autocast(cfg, train_device(cfg)) else "fp32"


def lineage(cfg: Any) -> list[str]:
    """The run that `--init-from` started from: its steps, wall time and commands (if it was an unmask run)."""
    from unmask.train.checkpoint import read_history, read_state

    lines, source, seen = [], cfg.init_from, set()
    while source and source not in seen:  # follow the chain: a run may itself have started from another
        seen.add(source)
        meta = read_state(source)
        done = f"{meta['step']} steps, {meta.get('wall_s', 0) / 60:.1f} min" if meta else "not an unmask train run"
        lines += [f"{'The weights started' if not lines else 'That run started'} from `{source}` ({done}), made by "
                  "these invocations:", "", "```", read_history(source), "```", ""]
        source = meta.get("config", {}).get("init_from")
    return ["## Initialisation", "", *lines] if lines else []


def write_card(cfg: Any, stats: dict[str, Any], command: str) -> Path:
    out = Path(cfg.out)
    ev = stats.get("eval", {})
    size = (out / "model.safetensors").stat().st_size
    task_knobs = f", max_steps={cfg.task_max_steps}" if cfg.task_max_steps is not None else ""
    kind, objective = model_kind(cfg)
    lines = [
        f"# {out.name}", "",
        f"A LLaDA-architecture {kind}, {cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"{cfg.n_heads} heads, SwiGLU {cfg.ffn_hidden}; {n_params(out):,} parameters, {size / 2**20:.1f} MiB fp32 "
        f"safetensors) trained {'further' if cfg.init_from else 'from scratch'} by `unmask train` with {objective} on "
        f"the built-in `{cfg.task}` task, character tokenizer (pad 0, eos 1, mask 2).", "",
        "## Reproduce", "", "Every invocation on the run directory, in order (a `--resume` continues the same "
        "data order and masks; a changed `--steps` re-times the cosine schedule from that step on):", "",
        "```", command, "```", "",
        *lineage(cfg),
        "## Training", "",
        f"- data: `get_task({cfg.task!r}, size={{'train': {cfg.train_size}, 'test': 500}}{task_knobs})`, task seed 0, "
        f"train split ({cfg.train_size} distinct problems; the test split never shares a question with it)",
        f"- seed {cfg.seed}; {cfg.steps} steps × batch {cfg.batch_size} "
        f"(≈{cfg.steps * cfg.batch_size / cfg.train_size:.1f} epochs); AdamW β=(0.9, 0.95), lr {cfg.lr} with "
        f"{cfg.warmup} warm-up steps then cosine to {cfg.lr * cfg.min_lr_ratio:g}, weight decay {cfg.weight_decay}, "
        f"grad clip {cfg.grad_clip}",
        objective_line(cfg),
        f"- final loss (mean of the last 50 steps): {stats.get('loss', float('nan')):.4f}",
        f"- throughput: {stats.get('tokens_per_s', 0):.0f} tokens/s (prompt + answer tokens); "
        f"wall time {stats.get('wall_s', 0) / 60:.1f} min",
        f"- hardware: {hardware(cfg.threads)}; torch {torch.__version__}; dtype {dtype_used(cfg)}", "",
        f"## Test accuracy ({ev.get('n', 0)} unseen test problems, gen_length 48)", "",
        *accuracy_rows(ev), "",
        "Measured with `python -m unmask.train.evaluate <dir> --task "
        f"{cfg.task} --n {ev.get('n', 0)}"
        + ("`." if getattr(cfg, "objective", "mdlm") == "ar" else f" --block-length {cfg.eval_block_length}`."), "",
    ]
    return save_card(out, lines)


def rebuild(out: str | Path, n: int = 500) -> Path:
    """Re-score a finished run on `n` test problems and rewrite its card from train_log.jsonl + state.json."""
    import json

    from unmask.train.checkpoint import LOG, read_history, read_state
    from unmask.train.evaluate import evaluate
    from unmask.train.mdlm import TrainConfig

    out = Path(out)
    meta = read_state(out)
    if not meta:
        raise FileNotFoundError(f"{out}: no train state to rebuild a card from")
    cfg = TrainConfig(**meta["config"])
    records = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    stats = [r for r in records if "loss" in r][-1]
    stats = {**stats, "wall_s": meta["wall_s"], "eval": evaluate(out, cfg, n=n)}
    return write_card(cfg, stats, read_history(out))


if __name__ == "__main__":
    import sys

    print(rebuild(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500).read_text())
