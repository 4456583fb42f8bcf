"""Train the Learn2PD commit filter (arXiv 2509.25188) on the teacher's own decoding trajectories.

1. Reference: the teacher decodes each training prompt one token per step (LLaDA's quota, the task's blocks,
   no early stop) through the engine; its final canvas is the token every position "finally gets".
2. States: the same prompts decoded through the engine by several rules (the reference itself, threshold
   rules, and in later rounds the learned rule itself, DAgger-style), each step's canvas streamed out.
3. Samples: for every recorded step, the teacher's logits on that canvas (recomputed, as cache 'none' does)
   give `step_features` at each masked position of the step's window; the label is 1 when the position's
   argmax equals the reference's final token there.
4. The head (decoding/learned_filter.py) is fit by binary cross-entropy with AdamW; the held-out samples'
   loss and accuracy are logged.

    unmask train-filter --model tiny-arith --out runs/learn2pd    (then copy the two files beside the model)
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from unmask.bench.tasks import get_task
from unmask.config import DecodeConfig
from unmask.decoding.learned_filter import FILTER_FILE, FilterHead, step_features, token_stats
from unmask.errors import ConfigError


@dataclass
class FilterConfig:
    model: str = "tiny-arith"
    task: str = "arith"
    out: str = "runs/learn2pd"
    prompts: int = 400                  # training prompts whose trajectories are recorded
    block_length: int = 16              # the teacher's semi-AR blocks (the task's gen_length is one window when 0)
    teachers: tuple[str, ...] = ("threshold=0.9", "threshold=0.7", "threshold=0.5", "threshold=0.9,block=0",
                                 "threshold=0.7,block=0")
    reference_every: int = 3            # keep every n-th step of the one-token-per-step reference as samples
    rounds: int = 2                     # rounds after the first add trajectories of the learned rule itself
    round_thresholds: tuple[float, ...] = (0.5, 0.8)
    hidden: int = 32
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1
    log: Callable[[str], None] = field(default=print, repr=False)


def teacher_config(spec: str, gen_length: int, block_length: int) -> DecodeConfig:
    """'threshold=0.9,block=0' → a DecodeConfig (block 0: the whole canvas is one window; cache 'none')."""
    values = dict(part.split("=", 1) for part in spec.split(","))
    block = int(values.pop("block", block_length)) or gen_length
    if "threshold" in values:
        return DecodeConfig(gen_length=gen_length, block_length=block, commit="threshold",
                            threshold=float(values.pop("threshold")), confidence_fp64=True)
    if "learned" in values:
        return DecodeConfig(gen_length=gen_length, block_length=block, commit="learned",
                            learned_filter=values.pop("path"), filter_threshold=float(values.pop("learned")))
    raise ConfigError(f"unknown teacher {spec!r}; use threshold=<t>[,block=<n>]")


def trajectories(llm, prompts: list[list[int]], cfg: DecodeConfig) -> list[list[list[int]]]:
    """Per prompt, decoded through the engine: the canvas before each step, then the final canvas."""
    engine = llm.make_engine(max_running=len(prompts))
    row = {engine.add_request(p, cfg, stream_canvas=True): i for i, p in enumerate(prompts)}
    canvases = [[[llm.spec.mask_id] * cfg.gen_length] for _ in prompts]
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                if out.canvas is not None:
                    canvases[row[out.request_id]].append(list(out.canvas))
    return canvases


def windows(states: torch.Tensor, mask_id: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, G) bool windows of the blocks schedule and (T,) steps since each window opened, for T states."""
    T, G = states.shape
    idx = torch.arange(G)
    first = torch.where(states == mask_id, idx, G).amin(-1).clamp(max=G - 1)
    index = first // block
    step = torch.zeros(T, dtype=torch.long)
    for t in range(1, T):
        step[t] = step[t - 1] + 1 if index[t] == index[t - 1] else 0
    return idx[None, :] // block == index[:, None], step


def samples(llm, prompt: list[int], states: list[list[int]], final: list[int], block: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) and labels (N,) of the masked positions in each state's window."""
    mask_id = llm.spec.mask_id
    canvas = torch.tensor(states)
    logits = llm.logits([prompt + s for s in states])[:, len(prompt):]            # (T, G, V)
    stats = token_stats(logits, llm.spec.eos_ids)
    is_masked = canvas == mask_id
    window, step = windows(canvas, mask_id, block)
    features = step_features(stats, torch.ones_like(is_masked), is_masked, window, step)
    keep = is_masked & window
    label = logits.argmax(-1) == torch.tensor(final)[None, :]
    return features[keep].float(), label[keep].float()


def collect(llm, prompts: list[list[int]], cfg: FilterConfig, teachers: list[str], gen_length: int,
            reference: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in teachers:
        dc = teacher_config(name, gen_length, cfg.block_length)
        t0 = time.perf_counter()
        runs = trajectories(llm, prompts, dc)
        for prompt, canvases, final in zip(prompts, runs, reference):
            x, y = samples(llm, prompt, canvases[:-1], final, dc.window_length)
            xs.append(x)
            ys.append(y)
        n = sum(len(c) - 1 for c in runs)
        cfg.log(f"teacher {name}: {n} states, {sum(len(y) for y in ys[-len(prompts):])} samples, "
                f"{time.perf_counter() - t0:.0f} s")
    return torch.cat(xs), torch.cat(ys)


def reference_data(llm, prompts: list[list[int]], cfg: FilterConfig, gen_length: int
                   ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """The one-token-per-step reference: its final canvases, and every `reference_every`-th state as samples."""
    block = cfg.block_length or gen_length
    dc = DecodeConfig(gen_length=gen_length, steps=gen_length, block_length=block, commit="linear",
                      stop_at_eos=False)
    t0 = time.perf_counter()
    runs = trajectories(llm, prompts, dc)
    finals = [c[-1] for c in runs]
    xs, ys = [], []
    for prompt, canvases, final in zip(prompts, runs, finals):
        x, y = samples(llm, prompt, canvases[:-1][::cfg.reference_every], final, block)
        xs.append(x)
        ys.append(y)
    cfg.log(f"reference (one token per step, block {block}): {len(prompts)} prompts, "
            f"{sum(len(y) for y in ys)} samples, {time.perf_counter() - t0:.0f} s")
    return finals, torch.cat(xs), torch.cat(ys)


def fit(x: torch.Tensor, y: torch.Tensor, cfg: FilterConfig) -> tuple[FilterHead, dict]:
    """BCE on 90% of the samples; loss and accuracy at 0.5 on the held-out 10%."""
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(y), generator=g)
    n_val = max(1, len(y) // 10)
    val, train = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    head = FilterHead(x.shape[1], cfg.hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    history = []
    for epoch in range(cfg.epochs):
        perm = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(perm), cfg.batch_size):
            b = perm[i:i + cfg.batch_size]
            loss = bce(head(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            logit = head(x[val])
            v_loss, v_acc = bce(logit, y[val]).item(), ((logit > 0).float() == y[val]).float().mean().item()
        history.append({"epoch": epoch + 1, "val_loss": round(v_loss, 5), "val_accuracy": round(v_acc, 5)})
        cfg.log(f"epoch {epoch + 1}/{cfg.epochs}: val loss {v_loss:.4f}, val accuracy {v_acc:.4f}")
    return head.eval(), {"samples": len(y), "positive_fraction": round(y.mean().item(), 4), "history": history}


def train_filter(cfg: FilterConfig) -> Path:
    """Collect, fit, save; rounds > 1 add trajectories of the learned rule with the previous round's head."""
    from unmask.engine.llm import LLM   # the facade; train never imports the engine's runner

    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    llm = LLM(cfg.model, device="cpu")
    task = get_task(cfg.task)
    gen_length = task.gen_length
    if cfg.block_length and gen_length % cfg.block_length:
        raise ConfigError(f"block_length {cfg.block_length} does not divide the task's gen_length {gen_length}")
    prompts = [llm.encode([task.prompt(ex)])[0] for ex in task.examples("train", cfg.prompts)]
    finals, x, y = reference_data(llm, prompts, cfg, gen_length)
    tx, ty = collect(llm, prompts, cfg, list(cfg.teachers), gen_length, finals)
    x, y = torch.cat([x, tx]), torch.cat([y, ty])
    out = Path(cfg.out)
    head, report = fit(x, y, cfg)
    for r in range(1, cfg.rounds):
        head.save(out, {"round": r})
        own = [f"learned={t},path={out / FILTER_FILE}" for t in cfg.round_thresholds]
        ox, oy = collect(llm, prompts, cfg, own, gen_length, finals)
        x, y = torch.cat([x, ox]), torch.cat([y, oy])
        head, report = fit(x, y, cfg)
    meta = {"trained_on": {"model": cfg.model, "task": cfg.task, "split": "train"},
            "config": {k: v for k, v in asdict(cfg).items() if k != "log"}, **report,
            "wall_seconds": round(time.perf_counter() - started, 1)}
    path = head.save(out, meta)
    cfg.log(f"saved {path} ({sum(p.numel() for p in head.parameters())} parameters) in "
            f"{meta['wall_seconds']:.0f} s")
    return path


if __name__ == "__main__":
    print(json.dumps(asdict(FilterConfig(log=print)), default=str))
