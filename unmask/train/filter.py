"""Train the Learn2PD commit filter (arXiv 2509.25188) on the teacher's own decoding trajectories.

1. Reference: the teacher decodes each of the filter's prompts (problems it never trained on, `filter_examples`)
   one token per step (LLaDA's quota, the task's blocks, no early stop) through the engine; its final canvas is
   the token every position "finally gets".
2. States: the same prompts decoded through the engine by several rules (the reference itself, threshold
   rules, and in later rounds the learned rule itself, DAgger-style), each step's canvas streamed out.
3. Samples: for every recorded step, the teacher's logits on that canvas (recomputed, as cache 'none' does)
   give `step_features` at each masked position of the step's window; the label is 1 when the position's
   argmax equals the reference's final token there.
4. The head (decoding/filter_head.py) is fit by binary cross-entropy with AdamW; the held-out samples'
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
from unmask.decoding.filter_features import FEATURES
from unmask.decoding.filter_head import FILTER_FILE, FilterHead
from unmask.errors import ConfigError
from unmask.train.filter_data import collect, reference_data


@dataclass
class FilterConfig:
    model: str = "tiny-arith"
    task: str = "arith"
    out: str = "runs/learn2pd"
    prompts: int = 400                  # prompts whose trajectories are recorded
    prompt_seed: int = 1                # task seed of the filter's prompts (see `filter_examples`)
    held_out: int = 500                 # the evaluation problems (test split, task seed 0) the filter never sees
    block_length: int = 16              # the teacher's semi-AR blocks (the task's gen_length is one window when 0)
    teachers: tuple[str, ...] = ("threshold=0.9", "threshold=0.7", "threshold=0.5", "threshold=0.9,block=0",
                                 "threshold=0.7,block=0")
    reference_every: int = 3            # keep every n-th step of the one-token-per-step reference as samples
    rounds: int = 2                     # rounds after the first add trajectories of the learned rule itself
    round_thresholds: tuple[float, ...] = (0.5, 0.8)
    features: tuple[str, ...] = FEATURES  # the columns the head reads (token_bucket last)
    hidden: int = 32
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_prompts: int = 200              # further prompts (after `prompts`) that choose the threshold
    val_thresholds: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
    seed: int = 0
    threads: int = 1
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True), repr=False)


def fit(x: torch.Tensor, y: torch.Tensor, cfg: FilterConfig) -> tuple[FilterHead, dict]:
    """BCE on 90% of the samples; loss and accuracy at 0.5 on the held-out 10%."""
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(y), generator=g)
    n_val = max(1, len(y) // 10)
    val, train = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    head = FilterHead(cfg.features, cfg.hidden)
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


def validate(llm, task, examples: list, cfg: FilterConfig, path: Path) -> dict:
    """Accuracy and mean NFE on held-out training prompts: threshold 0.9 (the baseline) and the learned rule at
    each of `val_thresholds`; the recommended threshold is the one with the fewest NFE at the baseline's accuracy
    or better (the highest threshold when none reaches it)."""
    prompts = [task.prompt(ex) for ex in examples]
    block = cfg.block_length or task.gen_length

    def run(**knobs) -> dict:
        done = llm.generate(prompts, DecodeConfig(gen_length=task.gen_length, block_length=block, **knobs))
        return {"accuracy": sum(task.score(ex, c.text) for ex, c in zip(examples, done)) / len(examples),
                "nfe": sum(c.nfe for c in done) / len(examples)}

    base = run(commit="threshold", threshold=0.9, confidence_fp64=True)
    rows = [{"filter_threshold": t, **run(commit="learned", learned_filter=str(path), filter_threshold=t)}
            for t in cfg.val_thresholds]
    for row in rows:
        cfg.log(f"validation: filter_threshold {row['filter_threshold']}: accuracy {row['accuracy']:.3f}, "
                f"NFE {row['nfe']:.2f} (threshold 0.9: {base['accuracy']:.3f}, {base['nfe']:.2f})")
    good = [r for r in rows if r["accuracy"] >= base["accuracy"]]
    best = min(good, key=lambda r: r["nfe"]) if good else rows[-1]
    return {"prompts": len(examples), "block_length": block, "threshold_0.9": base, "learned": rows,
            "recommended_threshold": best["filter_threshold"]}


def filter_examples(cfg: FilterConfig, n: int) -> list:
    """n problems the teacher never trained on and the evaluation never uses: the test split (the task's hash
    buckets keep it out of every training set) drawn with task seed `prompt_seed`, without the first `held_out`
    problems of the seed-0 test split (the ones bench and the model cards measure). On its own training
    problems the teacher is surer and more often right than on new ones, so a filter fit there is too bold."""
    held = {ex.question for ex in get_task(cfg.task).examples("test", cfg.held_out)}
    pool = get_task(cfg.task, seed=cfg.prompt_seed).examples("test", n + cfg.held_out)
    fresh = [ex for ex in pool if ex.question not in held]
    if len(fresh) < n:
        raise ConfigError(f"only {len(fresh)} fresh {cfg.task} problems for {n} filter prompts")
    return fresh[:n]


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
    examples = filter_examples(cfg, cfg.prompts + cfg.val_prompts)
    prompts = [llm.encode([task.prompt(ex)])[0] for ex in examples[:cfg.prompts]]
    finals, x, y = reference_data(llm, prompts, cfg, gen_length)
    tx, ty = collect(llm, prompts, cfg, list(cfg.teachers), gen_length, finals)
    x, y = torch.cat([x, tx]), torch.cat([y, ty])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    head, report = fit(x, y, cfg)
    for r in range(1, cfg.rounds):
        head.save(out, {"round": r})
        own = [f"learned={t},path={out / FILTER_FILE}" for t in cfg.round_thresholds]
        ox, oy = collect(llm, prompts, cfg, own, gen_length, finals)
        x, y = torch.cat([x, ox]), torch.cat([y, oy])
        head, report = fit(x, y, cfg)
    torch.save({"features": x, "labels": y}, out / "samples.pt")   # for refits; not part of the shipped filter
    meta = {"trained_on": {"model": cfg.model, "task": cfg.task, "split": "test", "task_seed": cfg.prompt_seed,
                           "excluded": f"the first {cfg.held_out} problems of the seed-0 test split"},
            "config": {k: v for k, v in asdict(cfg).items() if k != "log"}, **report,
            "wall_seconds": round(time.perf_counter() - started, 1)}
    path = head.save(out, meta)
    if cfg.val_prompts:
        meta["validation"] = validate(llm, task, examples[cfg.prompts:], cfg, path)
        path = head.save(out, meta)
    cfg.log(f"saved {path} ({sum(p.numel() for p in head.parameters())} parameters) in "
            f"{meta['wall_seconds']:.0f} s")
    return path


if __name__ == "__main__":
    print(json.dumps(asdict(FilterConfig(log=print)), default=str))
