"""`unmask distill`: step distillation of a shipped masked-diffusion model into a student of the same shape.

dParallel (arXiv 2509.26488, METHODS.md §13): the student starts from the teacher's weights and is trained
with certainty forcing (train/certainty.py) on the teacher's own decodes of the training prompts
(train/trajectories.py, cached in the run directory). The loop reuses `unmask train`'s pieces: the
deterministic batch stream, AdamW with warm-up + cosine, the resumable safetensors state of
train/checkpoint.py, the progress line and the test-split evaluation; every random draw depends only on
(seed, step), so a `--resume` continues the uninterrupted run.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from unmask.errors import ConfigError
from unmask.train.mdlm import knob

RECIPES = ("fast-dllm", "llada")
METHODS = ("dparallel", "di4c")
ORDERS = ("random", "confidence")


@lru_cache(maxsize=8)
def teacher_config(teacher: str) -> dict[str, Any]:
    """config.json of the teacher (a checkpoint directory or a bundled model name)."""
    from unmask.models.resolve import resolve_model

    path = resolve_model(teacher) / "config.json"
    if not path.is_file():
        raise ConfigError(f"teacher {teacher!r}: no config.json in {path.parent}")
    config = json.loads(path.read_text())
    if config.get("architectures") != ["LLaDAModelLM"] or "block_size" in config:
        raise ConfigError(f"teacher {teacher!r}: distillation needs a bidirectional LLaDAModelLM checkpoint, "
                          f"got {config.get('architectures')}{' with block_size' if 'block_size' in config else ''}")
    return config


@dataclass(frozen=True)
class DistillConfig:
    """Everything a `unmask distill` run depends on; the model card records it verbatim."""

    method: str = knob("dparallel", "dparallel (certainty forcing on the teacher's decodes) | di4c (a "
                                    "λ-conditioned mixture student, train/di4c.py)")
    teacher: str = knob("tiny-arith", "teacher checkpoint directory or bundled model name (the student starts "
                                      "from its weights)")
    task: str = knob("arith", "bench task whose train prompts the teacher decodes")
    train_size: int = knob(16000, "training prompts decoded by the teacher")
    task_max_steps: int | None = knob(None, "arith only: most operations per problem (the task's max_steps)")
    out: str = knob("runs/tiny-arith-dparallel", "run directory (checkpoint, teacher trajectories, state, card)")
    teacher_recipe: str = knob("fast-dllm", "how the teacher decodes its trajectories: fast-dllm | llada "
                                            "(recipes of train/evaluate.py, blocks of --block-length)")
    keep_wrong: bool = knob(False, "keep the teacher's answers the task scores wrong (default: drop them)")
    block_length: int = knob(16, "dParallel block: earlier blocks clean, later masked, this one at --mask-ratio")
    mask_ratio: float = knob(0.5, "fraction of the chosen block masked (its complementary copy masks the rest)")
    full_mask_prob: float = knob(0.0, "our deviation from dParallel: probability that a sample has its whole "
                                      "answer masked (one-shot decoding's state), with no complementary copy")
    entropy_weight: float = knob(2.0, "λ: weight of the entropy term on masked positions already predicted right")
    entropy_temperature: float = knob(0.5, "T: softmax temperature of that entropy")
    latents: int = knob(8, "di4c: K, the λ draws per noisy state (the mixture's components per step)")
    latent_features: int = knob(8, "di4c: sin/cos frequencies of λ fed to the student (config.json records them)")
    teacher_fraction: float = knob(0.5, "di4c: fraction of the masked positions the teacher step reveals")
    consistency_weight: float = knob(1.0, "di4c: weight of the consistency (two-step likelihood) term")
    data_weight: float = knob(0.0, "di4c: weight of the data term (the mixture likelihood of the true answer)")
    teacher_temperature: float = knob(1.0, "di4c: temperature of the two-step sample's draws (0 = argmax)")
    teacher_order: str = knob("random", "di4c: positions the teacher step reveals: random | confidence")
    steps: int = knob(2000, "optimizer steps")
    batch_size: int = knob(32, "prompts per step (each dParallel sample adds its complementary copy)")
    lr: float = knob(3e-4, "peak learning rate")
    min_lr_ratio: float = knob(0.1, "final learning rate as a fraction of the peak (cosine decay)")
    warmup: int = knob(50, "linear warm-up steps")
    weight_decay: float = knob(0.0, "AdamW weight decay (matrices only)")
    grad_clip: float = knob(1.0, "clip the gradient norm to this value (0 = off)")
    seed: int = knob(0, "seed of the data order and masks")
    device: str = knob("auto", "auto | cpu | cuda")
    dtype: str = knob("auto", "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16")
    threads: int = knob(0, "torch CPU threads (0 = torch's default)")
    eval_every: int = knob(0, "evaluate one-shot and fast-dllm accuracy every N steps (0 = only at the end)")
    eval_n: int = knob(200, "test problems per evaluation (0 = no evaluation)")
    eval_block_length: int = knob(16, "block_length of the llada / fast-dllm recipes used to evaluate")
    save_every: int = knob(100, "write a resumable checkpoint every N steps (0 = only at the end)")
    log_every: int = knob(10, "progress-line / log interval in steps")
    resume: bool = knob(False, "continue from the train state in `out` when there is one")

    def __post_init__(self) -> None:
        for name in ("train_size", "block_length", "steps", "batch_size", "eval_block_length", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("eval_n", "warmup", "eval_every", "save_every", "threads", "grad_clip", "weight_decay",
                     "entropy_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or not self.entropy_temperature > 0:
            raise ConfigError("need lr > 0, 0 ≤ min_lr_ratio ≤ 1 and entropy_temperature > 0")
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"mask_ratio must be in (0, 1) (its complement masks the rest), got {self.mask_ratio}")
        if not 0 <= self.full_mask_prob <= 1:
            raise ConfigError(f"full_mask_prob must be in [0, 1], got {self.full_mask_prob}")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.teacher_order not in ORDERS:
            raise ConfigError(f"teacher_order must be one of {', '.join(ORDERS)}, got {self.teacher_order!r}")
        if not 0 < self.teacher_fraction < 1 or min(self.teacher_temperature, self.consistency_weight,
                                                      self.data_weight) < 0:
            raise ConfigError("need 0 < teacher_fraction < 1, and teacher_temperature, consistency_weight and "
                              "data_weight ≥ 0")
        if not 1 <= self.latent_features <= 1024 or self.latents < 1:
            raise ConfigError(f"need latents ≥ 1 and latent_features in [1, 1024], got {self.latents} and "
                              f"{self.latent_features}")
        if self.teacher_recipe not in RECIPES:
            raise ConfigError(f"teacher_recipe must be one of {', '.join(RECIPES)}, got {self.teacher_recipe!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")

    # the student's shape is the teacher's: train/checkpoint.py reads these like TrainConfig's fields
    def _arch(self, key: str) -> Any:
        return teacher_config(self.teacher)[key]

    d_model = property(lambda self: self._arch("d_model"))
    n_layers = property(lambda self: self._arch("n_layers"))
    n_heads = property(lambda self: self._arch("n_heads"))
    ffn_hidden = property(lambda self: self._arch("mlp_hidden_size"))
    max_seq_len = property(lambda self: self._arch("max_sequence_length"))
    objective = property(lambda self: "mdlm")
    block_size = property(lambda self: None)   # no attention block: a bidirectional student
    conditioning = property(lambda self: self.latent_features if self.method == "di4c" else None)   # λ input
    init_from = property(lambda self: str(self.teacher_dir()))

    def teacher_dir(self) -> Path:
        from unmask.models.resolve import resolve_model

        return resolve_model(self.teacher)

    def to_dict(self) -> dict[str, Any]:
        arch = ("d_model", "n_layers", "n_heads", "ffn_hidden", "max_seq_len", "objective", "block_size",
                "conditioning")
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, **{k: getattr(self, k) for k in arch}}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DistillConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def eval_presets(cfg: DistillConfig, final: bool) -> tuple[str, ...]:
    """The train/evaluate.py recipes a run's evaluations use: Di4C targets the few-step regime."""
    if cfg.method == "di4c":
        return ("one-shot", "steps-2", "steps-4", "fast-dllm") if final else ("one-shot", "steps-2", "steps-4")
    return ("llada", "fast-dllm", "one-shot") if final else ("one-shot", "fast-dllm")


def method_setup(cfg: DistillConfig, out: Path, device: torch.device) -> tuple[Any, Callable, dict[str, Any]]:
    """(the run's RunSetup with its training pairs, loss(model, batch, generator) → (loss, parts), stats to record).

    dparallel: the teacher's decodes of the train prompts (cached in `out`) are the targets of certainty forcing;
    di4c: the task's train answers are the data, the frozen teacher scores the noisy states (train/di4c.py)."""
    from unmask.train import checkpoint
    from unmask.train.char_tokenizer import MASK_ID
    from unmask.train.trajectories import load_or_decode, teacher_pairs

    if cfg.method == "di4c":
        from unmask.models.loader import load_model
        from unmask.train.di4c import di4c_batch_loss

        teacher, _ = load_model(cfg.teacher_dir(), device)
        knobs = dict(latents=cfg.latents, teacher_fraction=cfg.teacher_fraction,
                     consistency_weight=cfg.consistency_weight, data_weight=cfg.data_weight,
                     teacher_temperature=cfg.teacher_temperature,
                     teacher_order=cfg.teacher_order)

        def di4c(model, batch, generator):
            return di4c_batch_loss(model, teacher, batch, generator, MASK_ID, cfg.full_mask_prob, **knobs)
        return checkpoint.RunSetup.build(cfg), di4c, {}
    from unmask.train.certainty import certainty_loss

    task = checkpoint.make_task(cfg)
    answers, correct, meta = load_or_decode(out, cfg.teacher, task, cfg.train_size, cfg.teacher_recipe,
                                            cfg.block_length, None if cfg.device == "auto" else cfg.device)
    run = checkpoint.RunSetup.build(cfg)           # the teacher's weights (init_from) in a fresh DecoderLM
    run = replace(run, pairs=teacher_pairs(task, cfg.train_size, answers, correct, cfg.keep_wrong))

    def certainty(model, batch, generator):
        return certainty_loss(model, batch, generator, cfg.block_length, cfg.mask_ratio, cfg.full_mask_prob,
                              cfg.entropy_weight, cfg.entropy_temperature)
    return run, certainty, {"teacher_trajectories": meta}


def distill(cfg: DistillConfig) -> dict[str, Any]:
    """Distil (or resume) per `cfg`; returns the final stats (loss parts, wall time, accuracies)."""
    from unmask.train import checkpoint
    from unmask.train.data import BatchStream
    from unmask.train.evaluate import evaluate
    from unmask.train.mdlm import (Progress, check_resume_steps, lr_at, make_optimizer, step_generator,
                                   train_device, uses_autocast)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, out = train_device(cfg), Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    run, batch_loss, recorded = method_setup(cfg, out, device)
    model, opt, start, wall0 = run.model.to(device), make_optimizer(run.model, cfg), 0, 0.0
    if cfg.resume and checkpoint.has_state(out):
        start, wall0 = checkpoint.load_state(out, model, opt, cfg)
        check_resume_steps(cfg, start)
    model.rotary.build_tables(device)
    stream = BatchStream(run.pairs, cfg.batch_size, cfg.seed)
    bar, log, tokens = Progress(cfg.steps, start), checkpoint.Log(out), 0
    stats: dict[str, Any] = {"step": start, **recorded, "examples": len(run.pairs)}
    model.train()
    for step in range(start, cfg.steps):
        batch = stream.batch(step)
        tokens += int(batch.key_mask.sum())
        batch, lr = batch.to(device), lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_autocast(cfg, device)):
            loss, parts = batch_loss(model, batch, step_generator(cfg.seed, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            stats.update(bar.update(done, loss.item(), tokens, lr, done == cfg.steps), **parts)
            stats.update(epoch=stream.epoch_of(done), wall_s=wall0 + stats["elapsed_s"])
            log.write({k: v for k, v in stats.items() if k not in recorded})
            tokens = 0
        evaluate_now = cfg.eval_every and cfg.eval_n and done % cfg.eval_every == 0 and done != cfg.steps
        if (cfg.save_every and done % cfg.save_every == 0) or done == cfg.steps or evaluate_now:
            checkpoint.save(cfg, run, model, opt, done, wall0 + time.perf_counter() - bar.t0)
        if evaluate_now:
            log.write({"step": done, **evaluate(out, cfg, n=cfg.eval_n, presets=eval_presets(cfg, False))})
            model.train()
    stats["wall_s"] = wall0 + time.perf_counter() - bar.t0
    if cfg.eval_n:
        stats["eval"] = evaluate(out, cfg, n=cfg.eval_n, presets=eval_presets(cfg, True))
        log.write({"step": cfg.steps, **stats["eval"]})
    return stats
