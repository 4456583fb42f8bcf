"""run_bench: one model, one task, a list of decoding configs, all measured on the same examples.

For each config: one first `generate` on the first prompt (timed apart as the cold start), then the
examples in batches of `batch_size`, timed with `time.perf_counter` around each `LLM.generate` call (warm).
Then the first `invariance_n` examples are decoded again one at a time, and the fraction whose tokens equal
their batched tokens is the batch-invariance column. Every config decodes with its own fixed `seed`
(per-request generators), so a run is repeatable. After all configs, each is compared with the baseline on
the same examples (`unmask/bench/stats.py`). The metric definitions are in `unmask/bench/record.py`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from unmask.bench.configs import BASELINE, BenchSpec, Config, family_of
from unmask.bench.record import BenchRecord, device_name, git_sha, max_rss_bytes, percentile
from unmask.bench.stats import paired_comparison, score_interval
from unmask.bench.tasks import Example, Task
from unmask.config import DecodeConfig
from unmask.engine.api import Completion
from unmask.engine.llm import LLM
from unmask.errors import ConfigError

ProgressFn = Callable[[int, int, str], None]  # (batches done, batches in all, label of the current config)

__all__ = ["BenchSpec", "ProgressFn", "run_bench"]


class MemoryMeter:
    """Peak memory of the timed part of one config (see record.py for the CPU caveat)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rss_before = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss_before = max_rss_bytes()

    def peak(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return max(0, max_rss_bytes() - self.rss_before)


@dataclass
class Timed:
    completions: list[Completion]
    seconds: float
    peak_mem_bytes: int
    cold_seconds: float = 0.0
    invariance: float | None = None  # fraction of checked examples whose batch-1 tokens equal the batched ones
    invariance_n: int = 0


def batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def run_config(llm: LLM, prompts: list[str], config: DecodeConfig, batch_size: int, chat: bool,
               tick: Callable[[], None], invariance_n: int = 0) -> Timed:
    """Cold call, then every prompt in batches (`tick()` after each), then the batch-invariance check."""
    start = time.perf_counter()
    llm.generate(prompts[:1], config, chat=chat)  # cold: allocator, kernels, lazy init
    cold = time.perf_counter() - start
    meter = MemoryMeter(llm.device)
    meter.start()
    completions: list[Completion] = []
    seconds = 0.0
    for rows in batches(len(prompts), batch_size):
        start = time.perf_counter()
        completions += llm.generate([prompts[i] for i in rows], config, chat=chat)
        seconds += time.perf_counter() - start  # generate returns host lists, so the device is synced
        tick()
    timed = Timed(completions, seconds, meter.peak(), cold)
    if batch_size > 1 and invariance_n > 0:
        checked = min(invariance_n, len(prompts))
        alone = [llm.generate([prompts[i]], config, chat=chat)[0] for i in range(checked)]
        same = sum(a.token_ids == b.token_ids for a, b in zip(alone, completions))
        timed.invariance, timed.invariance_n = same / checked, checked
    return timed


def make_record(llm: LLM, task: Task, examples: Sequence[Example], label: str, config_dict: dict,
                timed: Timed, batch_size: int) -> BenchRecord:
    done = timed.completions
    n = len(done)
    tokens = sum(len(c.token_ids) for c in done)
    nfe = sum(c.nfe for c in done)
    latencies = [c.seconds for c in done]
    extra = {"tokens": tokens, "total_nfe": nfe, "batch_size": batch_size,
             "eos_fraction": sum(c.finish_reason == "eos" for c in done) / n,
             "mean_latency_s": statistics.fmean(latencies),
             "computed_per_example": sum(c.computed for c in done) / n,  # positions x layers (cache cost)
             "cache_bytes_mean": sum(c.cache_bytes for c in done) / n}
    per_forward = [c.tokens_per_forward for c in done if c.tokens_per_forward is not None]
    if per_forward:   # uniform-corruption models: counted as transformers' _compute_tokens_per_forward
        extra["tokens_per_forward"] = statistics.fmean(per_forward)
    if llm.device.type != "cuda":
        extra["process_peak_rss_bytes"] = max_rss_bytes()
    if timed.invariance is not None:
        extra["invariance_n"] = timed.invariance_n
    verifier_nfe = sum(c.verifier_nfe for c in done)
    if verifier_nfe:   # AR-verified decoding: the verifier's forwards per generated token (plain AR decoding: 1)
        extra["verifier_forwards_per_token"] = verifier_nfe / max(tokens, 1)
        extra["verifier_computed_per_example"] = sum(c.verifier_computed for c in done) / n  # positions x layers
    scores = [float(s) for s in task.score_all(examples, [c.text for c in done])]
    low, high = score_interval(scores)
    return BenchRecord(
        label=label, config=config_dict, task=task.name, n=n, score=statistics.fmean(scores),
        nfe=nfe / n, tokens_per_nfe=tokens / max(nfe, 1), tokens_per_s=tokens / max(timed.seconds, 1e-9),
        latency_p50_s=percentile(latencies, 50), latency_p95_s=percentile(latencies, 95),
        peak_mem_bytes=timed.peak_mem_bytes, seconds=timed.seconds, seconds_per_example=timed.seconds / n,
        device=device_name(llm.device), torch_version=torch.__version__, git_sha=git_sha(),
        baseline=label == BASELINE, extra=extra, family=family_of(label), cold_seconds=timed.cold_seconds,
        score_low=low, score_high=high, scores=scores, batch_invariance=timed.invariance,
        verifier_nfe=sum(c.verifier_nfe for c in done) / n)


def compare_with_baseline(records: list[BenchRecord]) -> None:
    """Set `paired` on every record of a run that has a baseline (config − baseline, same examples)."""
    base = next((r for r in records if r.baseline), None)
    if base is None:
        return
    for r in records:
        if r is not base:
            r.paired = paired_comparison(r.scores, base.scores).to_dict()


def run_bench(llm: LLM, task: Task, configs: list[Config], limit: int | None = 100, batch_size: int = 16,
              progress: ProgressFn | None = None, split: str = "test", seed: int = 0,
              chat: bool = False, invariance_n: int = 16) -> list[BenchRecord]:
    """Measure every (label, config) on the first `limit` examples of `split`; one record per config.

    `seed` seeds torch's global RNG before each config (the decode itself uses each config's `seed`).
    `invariance_n`: how many examples are decoded again alone for the batch-invariance column (0: none).
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive int, got {limit!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if not configs:
        raise ConfigError("no configs to benchmark")
    if not isinstance(invariance_n, int) or invariance_n < 0:
        raise ConfigError(f"invariance_n must be a non-negative int, got {invariance_n!r}")
    examples = task.examples(split, limit)
    if not examples:
        raise ConfigError(f"task {task.name!r} has no {split} examples")
    prompts = [task.prompt(ex) for ex in examples]
    total = len(configs) * len(batches(len(prompts), batch_size))
    done = 0
    records = []
    for label, config in configs:
        if progress is not None:
            progress(done, total, label)

        def tick(label: str = label) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, label)

        torch.manual_seed(seed)
        timed = run_config(llm, prompts, config, batch_size, chat, tick, invariance_n)
        records.append(make_record(llm, task, examples, label, config.to_dict(), timed, batch_size))
    compare_with_baseline(records)
    return records
