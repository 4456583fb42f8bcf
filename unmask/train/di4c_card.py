"""The model card (README.md) of a `unmask distill --method di4c` run: teacher, loss, command, curve, accuracy."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from unmask.train.card import accuracy_rows, hardware, n_params, save_card


def log_records(out: Path) -> list[dict[str, Any]]:
    log = out / "train_log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def curve_rows(out: Path, points: int = 12) -> list[str]:
    """The training curve from train_log.jsonl: loss parts at about `points` steps, and every evaluation."""
    records = log_records(out)
    losses = [r for r in records if "distil" in r]
    evals = {r["step"]: r for r in records if "one-shot/accuracy" in r}
    if not losses and not evals:
        return []
    every = max(1, len(losses) // points)
    shown = {r["step"]: r for r in losses[every - 1::every] + losses[-1:]}
    few = sorted({k.split("/")[0] for r in evals.values() for k in r if k.endswith("/accuracy")},
                 key=lambda name: (name != "one-shot", name))
    parts = [p for p in ("distil", "consistency", "data") if any(p in r for r in losses)]
    rows = ["| step | loss (mean of last 50 logged) | " + " | ".join(parts) + " | "
            + " | ".join(f"{name} accuracy" for name in few) + " |",
            "|---|---|" + "---|" * (len(parts) + len(few))]
    for step in sorted(set(shown) | set(evals)):
        r, e = shown.get(step, {}), evals.get(step, {})
        cells = [f"{r['loss']:.4f}" if "loss" in r else ""] + [f"{r[p]:.4f}" if p in r else "" for p in parts]
        cells += [f"{e[f'{name}/accuracy']:.3f}" if f"{name}/accuracy" in e else "" for name in few]
        rows.append(f"| {step} | " + " | ".join(cells) + " |")
    return ["## Training curve", "", *rows, ""]


def last_loss(out: Path) -> dict[str, Any]:
    """The last logged loss record (a run resumed at its end logs none of its own)."""
    losses = [r for r in log_records(out) if "distil" in r]
    return losses[-1] if losses else {}


def write_card(cfg: Any, stats: dict[str, Any], command: str) -> Path:
    out = Path(cfg.out)
    ev = stats.get("eval", {})
    final = {**last_loss(out), **{k: v for k, v in stats.items() if k in ("loss", "distil", "consistency", "data")}}
    size = (out / "model.safetensors").stat().st_size
    lines = [
        f"# {out.name}", "",
        f"A λ-conditioned LLaDA-architecture masked-diffusion model ({cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"{cfg.n_heads} heads, SwiGLU {cfg.ffn_hidden}, λ input with {cfg.latent_features} sin/cos features; "
        f"{n_params(out):,} parameters, {size / 2**20:.1f} MiB fp32 safetensors) distilled from `{cfg.teacher}` by "
        f"`unmask distill --method di4c` (Di4C, arXiv 2410.08709: a mixture-of-products student that keeps the "
        f"correlation between tokens of one step). config.json has `\"latent_conditioning\": "
        f"{{\"features\": {cfg.latent_features}}}`; the engine draws λ ~ U(0, 1) per row and per step from the "
        f"request's generator, so a seeded request is reproducible and independent of its batch.", "",
        "## Reproduce", "", "Every invocation on the run directory, in order (a `--resume` continues the same data "
        "order and random draws):", "", "```", command, "```", "",
        "## Distillation", "",
        f"- data: the first {cfg.train_size} train problems of `get_task({cfg.task!r})` (their answers), each answer "
        f"masked at a level t ~ U(0, 1), or wholly with probability {cfg.full_mask_prob}; prompts clean",
        f"- loss (train/di4c.py): KL(teacher ‖ mixture of {cfg.latents} λ-components) on the masked positions + "
        f"{cfg.consistency_weight} × the mixture's negative log-likelihood of a two-step sample (a teacher step "
        f"revealing {cfg.teacher_fraction:.0%} of the masked positions, order `{cfg.teacher_order}`, then the "
        f"student; draws at temperature {cfg.teacher_temperature})"
        + (f" + {cfg.data_weight} × the mixture's negative log-likelihood of the true answer" if cfg.data_weight else ""),
        f"- seed {cfg.seed}; {cfg.steps} steps × {cfg.batch_size} problems; AdamW β=(0.9, 0.95), lr {cfg.lr} with "
        f"{cfg.warmup} warm-up steps then cosine to {cfg.lr * cfg.min_lr_ratio:g}, weight decay {cfg.weight_decay}, "
        f"grad clip {cfg.grad_clip}; full fine-tune from the teacher's weights, the λ projection starting at zero",
        f"- final loss (mean of the last 50 logged steps): {final.get('loss', float('nan')):.4f} ("
        + ", ".join(f"{p} {final[p]:.4f}" for p in ("distil", "consistency", "data") if p in final)
        + " at the last logged step)",
        f"- wall time {stats.get('wall_s', 0) / 60:.1f} min; hardware: {hardware(cfg.threads)}; torch {torch.__version__}",
        "", *curve_rows(out),
        f"## Test accuracy ({ev.get('n', 0)} unseen test problems, gen_length 48, seed 0)", "",
        *accuracy_rows(ev), "",
        f"Measured with `python -m unmask.train.evaluate <dir> --task {cfg.task} --n {ev.get('n', 0)} "
        f"--recipes {','.join(k.split('/')[0] for k in ev if k.endswith('/accuracy'))} "
        f"--block-length {cfg.eval_block_length}`.", "",
    ]
    return save_card(out, lines)
