"""The masked-diffusion SFT objective of LLaDA (arXiv 2502.09992, Eq. 5 and its SFT guidelines) and the loop.

Per example: t ~ U(0, 1), p = (1 - eps)·t + eps; every answer position (EOS padding included) is replaced
by [MASK] with probability p; prompt tokens are never masked. The loss is the cross-entropy on the masked
positions weighted by 1/p, summed per row, divided by the row's answer length (LLaDA SFT's normalisation,
here = gen_length for every row), then averaged over the batch:

    loss = 1/B · Σ_b 1/len_b · Σ_{i masked in b} CE(logits_bi, x_bi) / p_b

Answer-prefix conditioning (`prefix_prob`, off by default): a row is, with that probability, turned into the
SFT pair (prompt + answer[:c], answer[c:]) for a cut c ~ U{0, …, answer length without its EOS padding}: the
first c answer tokens join the prompt (never masked) and the objective above applies to the rest. Every such
pair is itself a valid conditional example, so the loss stays the LLaDA SFT objective on an augmented data
set. It makes "the answer so far is clean, what follows is masked" — the state a semi-autoregressive,
one-token-per-step decode is in — as frequent in training as it is at inference: under i.i.d. masking alone a
step's operands being clean while its result and every later copy of the result are masked is rare.

t is drawn stratified over the batch (t_b = (π_b + u_b)/B for a random permutation π), an unbiased
low-variance variant of i.i.d. U(0, 1) draws. Training: AdamW, linear warm-up then cosine decay, gradient
clipping, fp32 on CPU / bf16 autocast on CUDA by default (`dtype=bf16` autocasts on the CPU too); every
random draw depends only on (seed, step), so a resumed run continues the uninterrupted one.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.errors import ConfigError
from unmask.models.cache_view import FullView
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import EOS_ID, MASK_ID
from unmask.train.data import Batch, BatchStream


def knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a `unmask train` run depends on; the model card records it verbatim."""

    task: str = knob("arith", "bench task to train on: arith | sort | copy | two-modes")
    train_size: int = knob(20000, "number of distinct training examples drawn from the task's train split")
    task_max_steps: int | None = knob(None, "arith only: most operations per problem (the task's max_steps)")
    out: str = knob("runs/tiny-arith", "output directory (checkpoint, tokenizer, train state, model card)")
    d_model: int = knob(192, "hidden size")
    n_layers: int = knob(4, "transformer layers")
    n_heads: int = knob(6, "attention heads")
    ffn_hidden: int = knob(512, "SwiGLU hidden size")
    max_seq_len: int = knob(160, "context length written to config.json (prompt + gen_length must fit)")
    steps: int = knob(3000, "optimizer steps")
    batch_size: int = knob(64, "examples per step")
    lr: float = knob(2e-3, "peak learning rate")
    min_lr_ratio: float = knob(0.1, "final learning rate as a fraction of the peak (cosine decay)")
    warmup: int = knob(100, "linear warm-up steps")
    weight_decay: float = knob(0.1, "AdamW weight decay (matrices only)")
    grad_clip: float = knob(1.0, "clip the gradient norm to this value (0 = off)")
    mask_eps: float = knob(1e-3, "floor of the masking probability: p = (1 - eps)·t + eps")
    prefix_prob: float = knob(0.0, "probability that a row keeps a random prefix of its answer clean "
                                   "(answer-prefix conditioning, module docstring; 0 = plain LLaDA SFT)")
    seed: int = knob(0, "seed of the initialisation, data order and masks (the task data uses task seed 0)")
    device: str = knob("auto", "auto | cpu | cuda")
    dtype: str = knob("auto", "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (autocast on any device)")
    threads: int = knob(0, "torch CPU threads (0 = torch's default)")
    eval_every: int = knob(0, "evaluate every N steps (0 = only at the end)")
    eval_n: int = knob(200, "test problems per evaluation (0 = no evaluation)")
    eval_block_length: int = knob(16, "block_length of the llada preset used to evaluate")
    save_every: int = knob(500, "write a resumable checkpoint every N steps (0 = only at the end)")
    log_every: int = knob(10, "progress-bar / log refresh interval in steps")
    resume: bool = knob(False, "continue from the train state in `out` when there is one")
    objective: str = knob("mdlm", "mdlm (LLaDA SFT, bidirectional) | bd3 (BD3-LM block diffusion: block-causal "
                                  "model with blocks of --block-size, see train/bd3.py) | ar (causal next-token "
                                  "model, a verifier for APD / SpecDiff / guided diffusion, see train/ar.py)")
    block_size: int = knob(16, "bd3: the model's attention block (written to config.json as block_size)")
    init_from: str | None = knob(None, "start from this checkpoint directory's weights (same architecture; "
                                       "fresh optimizer and schedule; ignored when --resume finds a state)")

    def __post_init__(self) -> None:
        positive = ("block_size", "train_size", "d_model", "n_layers", "n_heads", "ffn_hidden", "max_seq_len", "steps",
                    "batch_size", "eval_block_length", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("eval_n", "warmup", "eval_every", "save_every", "threads", "grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or not 0 <= self.mask_eps < 1:
            raise ConfigError("need lr > 0, 0 ≤ min_lr_ratio ≤ 1 and 0 ≤ mask_eps < 1")
        if not 0 <= self.prefix_prob <= 1:
            raise ConfigError(f"prefix_prob must be in [0, 1], got {self.prefix_prob}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"d_model {self.d_model} must split into n_heads {self.n_heads} heads of even size")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.objective not in ("mdlm", "bd3", "ar"):
            raise ConfigError(f"objective must be mdlm, bd3 or ar, got {self.objective!r}")
        if self.objective == "bd3" and self.prefix_prob:
            raise ConfigError("prefix_prob is an mdlm option: bd3 already trains every block on its clean earlier blocks")
        if self.objective == "ar" and self.prefix_prob:
            raise ConfigError("prefix_prob is an mdlm option: ar already trains every token on its clean prefix")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---- the objective --------------------------------------------------------------------------------------
def sample_t(batch_size: int, generator: torch.Generator) -> Tensor:
    """(B,) stratified U(0, 1) draws: one per stratum [k/B, (k+1)/B), in random order."""
    strata = torch.randperm(batch_size, generator=generator).double()
    return ((strata + torch.rand(batch_size, generator=generator, dtype=torch.float64)) / batch_size).float()


def clean_prefix(batch: Batch, generator: torch.Generator, prob: float) -> Tensor:
    """(B, L) bool on the CPU: answer positions kept clean by answer-prefix conditioning (module docstring)."""
    B, start = batch.input_ids.shape[0], batch.answer_start
    ids = batch.input_ids.cpu()[:, start:]                                          # (B, G)
    G = ids.shape[1]
    is_eos = ids == EOS_ID
    length = torch.where(is_eos.any(-1), is_eos.int().argmax(-1), G)              # (B,) answer without padding
    chosen = torch.rand(B, generator=generator) < prob                             # (B,)
    cut = (torch.rand(B, generator=generator) * (length + 1)).long()               # (B,) in [0, length]
    keep = torch.arange(G)[None, :] < torch.where(chosen, cut, 0)[:, None]         # (B, G)
    return torch.cat([torch.zeros(B, start, dtype=torch.bool), keep], dim=1)


def noise_batch(batch: Batch, generator: torch.Generator, mask_id: int = MASK_ID, eps: float = 1e-3,
                t: Tensor | None = None, prefix_prob: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Mask answer tokens: returns (noisy ids (B, L), masked (B, L) bool, p_mask (B,))."""
    B, L = batch.input_ids.shape
    t = sample_t(B, generator) if t is None else t
    p_mask = (1 - eps) * t + eps  # (B,)
    u = torch.rand(B, L, generator=generator)  # (B, L)
    masked = (u < p_mask[:, None]) & batch.answer_mask.cpu()
    if prefix_prob > 0:  # extra draws only when on, so plain runs keep their random streams
        masked &= ~clean_prefix(batch, generator, prefix_prob)
    masked = masked.to(batch.input_ids.device)
    noisy = torch.where(masked, torch.full_like(batch.input_ids, mask_id), batch.input_ids)
    return noisy, masked, p_mask.to(batch.input_ids.device)


def loss_on(model: DecoderLM, batch: Batch, noisy: Tensor, masked: Tensor, p_mask: Tensor) -> Tensor:
    """LLaDA SFT loss for a given noising: Σ_masked CE/p, per row ÷ answer length, mean over rows."""
    B, L = noisy.shape
    start = batch.answer_start  # answers occupy the last gen_length columns of every row
    cols = torch.arange(start, L, device=noisy.device).expand(B, -1)  # (B, G)
    logits = model(noisy, batch.positions, FullView(batch.key_mask), logits_at=cols)  # (B, G, V) float32
    target, hit = batch.input_ids[:, start:], masked[:, start:]  # (B, G)
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, G)
    weight = hit.float() / (p_mask[:, None] * batch.answer_lengths[:, None].float())  # (B, G)
    return (ce * weight).sum() / B


def masked_diffusion_loss(model: DecoderLM, batch: Batch, generator: torch.Generator,
                          mask_id: int = MASK_ID, eps: float = 1e-3, prefix_prob: float = 0.0) -> Tensor:
    """One Monte-Carlo estimate of the LLaDA SFT objective on `batch` (module docstring)."""
    return loss_on(model, batch, *noise_batch(batch, generator, mask_id, eps, prefix_prob=prefix_prob))


def objective_loss(cfg: TrainConfig, model: DecoderLM, batch: Batch, generator: torch.Generator) -> Tensor:
    """The configured objective's loss on one batch."""
    if cfg.objective == "bd3":
        from unmask.train.bd3 import bd3_loss

        return bd3_loss(model, batch, cfg.block_size, generator, eps=cfg.mask_eps)
    if cfg.objective == "ar":
        from unmask.train.ar import ar_loss

        return ar_loss(model, batch)
    return masked_diffusion_loss(model, batch, generator, eps=cfg.mask_eps, prefix_prob=cfg.prefix_prob)


# ---- the loop ---------------------------------------------------------------------------------------------
def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr · min_lr_ratio at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 7919)


def make_optimizer(model: DecoderLM, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    # foreach=False: the default multi-tensor path pays a multi-second torch._dynamo import on the first step
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)


class Progress:
    """A one-line progress bar on stderr: step, loss (running mean), lr, tokens/s, elapsed."""

    def __init__(self, total: int, start: int) -> None:
        self.total, self.t0, self.start, self.tokens, self.losses = total, time.perf_counter(), start, 0, []

    def update(self, step: int, loss: float, tokens: int, lr: float, final: bool = False) -> dict[str, float]:
        self.tokens += tokens
        self.losses.append(loss)
        elapsed = time.perf_counter() - self.t0
        recent = sum(self.losses[-50:]) / len(self.losses[-50:])
        stats = {"step": step, "loss": recent, "last_loss": loss, "lr": lr, "tokens_per_s": self.tokens / max(elapsed, 1e-9),
                 "elapsed_s": elapsed}
        done = int(30 * step / self.total)
        sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {step}/{self.total} loss {recent:.4f} "
                         f"lr {lr:.2e} {stats['tokens_per_s']:.0f} tok/s {elapsed / 60:.1f} min" + ("\n" if final else ""))
        sys.stderr.flush()
        return stats


def train_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def uses_autocast(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: always with dtype=bf16; with dtype=auto only on CUDA."""
    return cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.type == "cuda")


def check_resume_steps(cfg: TrainConfig, saved: int, announce: bool = True) -> None:
    """A resumed run must have steps left to train, or say that it has none."""
    if saved > cfg.steps:
        raise ConfigError(f"the run in {cfg.out} is already at step {saved}, past --steps {cfg.steps}; "
                          f"pass --steps > {saved} to train further (the schedule is set by --steps)")
    if saved == cfg.steps and announce:
        print(f"train: the run in {cfg.out} already reached step {saved} = --steps: nothing to train"
              + (", evaluating it" if cfg.eval_n else ""), file=sys.stderr)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) per `cfg`; returns the final stats (loss, tokens/s, wall time, accuracies)."""
    from unmask.train import checkpoint
    from unmask.train.evaluate import evaluate

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = train_device(cfg)
    autocast = uses_autocast(cfg, device)
    run = checkpoint.RunSetup.build(cfg)
    model, opt, start, wall0 = run.model.to(device), make_optimizer(run.model, cfg), 0, 0.0
    if cfg.resume and checkpoint.has_state(cfg.out):
        start, wall0 = checkpoint.load_state(cfg.out, model, opt, cfg)
        check_resume_steps(cfg, start)
    model.rotary.build_tables(device)
    stream = BatchStream(run.pairs, cfg.batch_size, cfg.seed)
    bar, log, tokens = Progress(cfg.steps, start), checkpoint.Log(cfg.out), 0
    stats: dict[str, Any] = {"step": start}
    model.train()
    for step in range(start, cfg.steps):
        batch = stream.batch(step)
        tokens += int(batch.key_mask.sum())
        batch = batch.to(device)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = objective_loss(cfg, model, batch, step_generator(cfg.seed, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            stats = bar.update(done, loss.item(), tokens, lr, done == cfg.steps)
            stats.update(epoch=stream.epoch_of(done), wall_s=wall0 + stats["elapsed_s"])
            log.write(stats)
            tokens = 0
        evaluate_now = cfg.eval_every and cfg.eval_n and done % cfg.eval_every == 0 and done != cfg.steps
        if (cfg.save_every and done % cfg.save_every == 0) or done == cfg.steps or evaluate_now:
            checkpoint.save(cfg, run, model, opt, done, wall0 + time.perf_counter() - bar.t0)
        if evaluate_now:
            log.write({"step": done, **evaluate(cfg.out, cfg, n=cfg.eval_n, presets=("llada",))})
            model.train()
    stats["wall_s"] = wall0 + time.perf_counter() - bar.t0
    if cfg.eval_n:
        stats["eval"] = evaluate(cfg.out, cfg, n=cfg.eval_n)
        log.write({"step": cfg.steps, **stats["eval"]})
    return stats
