"""BenchRecord: what one decoding config measured on one task, plus the hardware and code it ran on.

Definitions (STYLE.md principle 18; the same for every config of a run):
- `nfe`: mean model forwards per example (`Completion.nfe`); with a verifier model (AR-verified decoding) the
  dLLM's only, and `verifier_nfe` the verifier's (`Completion.verifier_nfe`; 0 without one).
- `tokens`: completion-only tokens, counted up to the first EOS (`len(Completion.token_ids)`).
- `tokens_per_nfe` (TPF, tokens per forward): total tokens / total NFE, tokens up to EOS as above and every
  model forward counted (what d3LLM's `num_generated_tokens / nfe` and AUP use).
- `tokens_per_s`: total tokens / `seconds`, the wall time of the timed `generate` calls (warm: after the
  config's first call).
- `cold_seconds`: wall time of the config's first `generate` call (one prompt: allocator, kernels, lazy init),
  kept apart from the warm `seconds`. The first config of a run also pays the process's one-time costs.
- `score_low` / `score_high`: the 95% interval of `score` (`unmask/bench/stats.py`); `scores` the per-example
  scores, in example order (the same examples for every config of a run).
- `paired`: this config against the run's baseline on the same examples (`stats.Paired`: difference, its
  paired-bootstrap 95% interval, McNemar counts and exact p); None for the baseline or without one.
- `batch_invariance`: the fraction of the first `extra["invariance_n"]` examples whose tokens decoded alone
  (batch 1) equal their tokens in the run's batches; None when not measured (batch size 1, or turned off).
- `family`: the preset a config came from (sweep points and fixed-k rows share one); AUP is per family.
- `latency_p50_s` / `latency_p95_s`: per request, from the start of its batch's decode to the step at which
  that request finished (`Completion.seconds`); with `--batch-size 1` this is a lone request's latency.
- `peak_mem_bytes`: on CUDA, `torch.cuda.max_memory_allocated` over the timed batches (stats reset first,
  weights included); on CPU, how much the process's peak RSS (`resource.getrusage().ru_maxrss`) grew during
  the timed batches. Peak RSS never falls, so on CPU a config that fits in memory an earlier config already
  touched shows 0; `extra["process_peak_rss_bytes"]` holds the absolute peak.
- `extra`: tokens, total_nfe, batch_size, eos_fraction (rows that ended with EOS), mean_latency_s,
  computed_per_example (positions × layers the model computed: the cache's saving), cache_bytes_mean
  (each request's share of its batch's peak cache size), process_peak_rss_bytes (CPU only); with a verifier
  model, verifier_forwards_per_token and verifier_computed_per_example (its positions × layers).
"""
from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class BenchRecord:
    label: str  # e.g. "llada", "k=4", "fast-dllm t=0.9"
    config: dict[str, Any]  # DecodeConfig.to_dict()
    task: str
    n: int  # examples scored
    score: float  # mean task score in [0, 1]
    nfe: float  # mean NFE per example
    tokens_per_nfe: float
    tokens_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    peak_mem_bytes: int
    seconds: float  # timed wall seconds for all n examples
    seconds_per_example: float
    device: str
    torch_version: str
    git_sha: str
    baseline: bool = False  # the re-measured reference config of this run
    extra: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    cold_seconds: float = 0.0
    score_low: float = 0.0
    score_high: float = 1.0
    scores: list[float] = field(default_factory=list)
    paired: dict[str, Any] | None = None
    batch_invariance: float | None = None
    verifier_nfe: float = 0.0  # mean forwards of the verifier model per example (AR-verified decoding)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated q-th percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The checkout's `git rev-parse HEAD`, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: torch.device) -> str:
    """"NVIDIA H100 80GB HBM3" on CUDA; "cpu: <model name> (N threads)" on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {_cpu_name()} ({torch.get_num_threads()} threads)"


def max_rss_bytes() -> int:
    """The process's peak resident set size so far (0 where `resource` is unavailable, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux
