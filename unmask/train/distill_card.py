"""The model card (README.md) of a `unmask distill` run: teacher, data, objective, reproduce commands, accuracy."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from unmask.train.card import accuracy_rows, hardware, n_params, save_card


def curve_rows(out: Path) -> list[str]:
    """The evaluations logged during the run (train_log.jsonl): step, one-shot and fast-dllm accuracy."""
    log = out / "train_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    evals = [r for r in records if "one-shot/accuracy" in r]
    if not evals:
        return []
    rows = ["| step | one-shot accuracy | fast-dllm accuracy | fast-dllm NFE | test problems |", "|---|---|---|---|---|"]
    for r in evals:
        rows.append(f"| {r['step']} | {r['one-shot/accuracy']:.3f} | {r.get('fast-dllm/accuracy', float('nan')):.3f} | "
                    f"{r.get('fast-dllm/mean_nfe', float('nan')):.2f} | {r['n']} |")
    return ["## Training curve", "", *rows, ""]


def write_card(cfg: Any, stats: dict[str, Any], command: str) -> Path:
    if getattr(cfg, "method", "dparallel") == "di4c":
        from unmask.train.di4c_card import write_card as write_di4c_card

        return write_di4c_card(cfg, stats, command)
    out = Path(cfg.out)
    ev, meta = stats.get("eval", {}), stats.get("teacher_trajectories", {})
    size = (out / "model.safetensors").stat().st_size
    deviation = (f"; **our deviation**: {cfg.full_mask_prob:.0%} of the samples instead have the whole answer masked "
                 "(one-shot decoding's state) and no complementary copy" if cfg.full_mask_prob else "")
    lines = [
        f"# {out.name}", "",
        f"A LLaDA-architecture masked-diffusion model ({cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, "
        f"SwiGLU {cfg.ffn_hidden}; {n_params(out):,} parameters, {size / 2**20:.1f} MiB fp32 safetensors) distilled "
        f"from `{cfg.teacher}` by `unmask distill` with dParallel's certainty forcing (arXiv 2509.26488) on the "
        f"teacher's own decodes of the `{cfg.task}` training prompts. Same tokenizer and shape as the teacher.", "",
        "## Reproduce", "", "Every invocation on the run directory, in order (a `--resume` continues the same data "
        "order and masks and reuses the cached teacher trajectories):", "", "```", command, "```", "",
        "## Distillation", "",
        f"- teacher trajectories: `{cfg.teacher}` decodes the first {cfg.train_size} train prompts of "
        f"`get_task({cfg.task!r})` with the `{cfg.teacher_recipe}` recipe (blocks of {cfg.block_length}); "
        f"{meta.get('accuracy', float('nan')):.1%} of its answers are right, "
        + ("all are kept" if cfg.keep_wrong else f"the {stats.get('examples', '?')} right ones are the targets")
        + f" ({meta.get('seconds', 0) / 60:.1f} min to decode)",
        f"- samples: a random block of {cfg.block_length} (earlier blocks clean, later ones masked), masked at ratio "
        f"{cfg.mask_ratio} plus its complementary copy{deviation}",
        f"- loss: CE on the masked tokens + {cfg.entropy_weight} × mean entropy (softmax at T = "
        f"{cfg.entropy_temperature}) over the masked positions whose argmax is already right",
        f"- seed {cfg.seed}; {cfg.steps} steps × {cfg.batch_size} prompts; AdamW β=(0.9, 0.95), lr {cfg.lr} with "
        f"{cfg.warmup} warm-up steps then cosine to {cfg.lr * cfg.min_lr_ratio:g}, weight decay {cfg.weight_decay}, "
        f"grad clip {cfg.grad_clip}; full fine-tune (no LoRA)",
        f"- final loss (mean of the last 50 logged steps): {stats.get('loss', float('nan')):.4f} (CE "
        f"{stats.get('ce', float('nan')):.4f}, entropy {stats.get('entropy', float('nan')):.4f} at the last step)",
        f"- wall time {stats.get('wall_s', 0) / 60:.1f} min; hardware: {hardware(cfg.threads)}; torch {torch.__version__}",
        "",
        *curve_rows(out),
        f"## Test accuracy ({ev.get('n', 0)} unseen test problems, gen_length 48)", "",
        *accuracy_rows(ev), "",
        f"Measured with `python -m unmask.train.evaluate <dir> --task {cfg.task} --n {ev.get('n', 0)} "
        f"--block-length {cfg.eval_block_length}`.", "",
    ]
    return save_card(out, lines)
