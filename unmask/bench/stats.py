"""Uncertainty of bench scores: a 95% interval per score and a paired comparison against the baseline.

- `score_interval`: Wilson's score interval when every per-example score is 0 or 1 (exact-match tasks; it
  stays inside [0, 1] and behaves near 0% and 100%, where the normal approximation does not), else a
  percentile bootstrap of the mean.
- `paired_comparison`: the same examples decoded by two configs. The difference of means gets a paired
  bootstrap 95% interval (examples resampled together, so the correlation between configs is kept), and
  binary scores get McNemar's exact test on the discordant pairs (b = baseline right / config wrong,
  c = baseline wrong / config right; two-sided binomial p-value with n = b + c, p = 1/2).

A claim such as "no accuracy loss" is supported only where the interval of the difference is narrow and
holds 0; `supports_no_loss` says whether the interval's lower end stays above a tolerated loss.
Everything is deterministic: bootstraps use their own seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal
BOOTSTRAP_SAMPLES = 4000


def is_binary(scores: Sequence[float]) -> bool:
    return all(s in (0.0, 1.0) for s in scores)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_means(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `samples` resamples (with replacement) of the rows of `values` (shape (n,) or (n, k))."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    return values[picks].mean(axis=1)


def score_interval(scores: Sequence[float]) -> tuple[float, float]:
    """The 95% interval of the mean score (module docstring)."""
    if not scores:
        return 0.0, 1.0
    if is_binary(scores):
        return wilson_interval(int(sum(scores)), len(scores))
    means = bootstrap_means(np.asarray(scores, dtype=np.float64))
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: P(a Binomial(b + c, 1/2) is at least as far from its mean)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Paired:
    """A config against the baseline on the same examples (differences are config − baseline)."""

    diff: float        # difference of mean scores
    low: float         # paired-bootstrap 95% interval of the difference
    high: float
    n: int
    worse: int | None = None    # McNemar b: examples the baseline got right and the config wrong (binary)
    better: int | None = None   # McNemar c: the other way round
    p_value: float | None = None  # McNemar exact two-sided p (binary scores only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_comparison(config: Sequence[float], baseline: Sequence[float]) -> Paired:
    """Compare per-example scores of one config with the baseline's, example by example."""
    if len(config) != len(baseline) or not config:
        raise ValueError(f"paired comparison needs the same non-empty examples, got {len(config)} and "
                         f"{len(baseline)} scores")
    a, b = np.asarray(config, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    means = bootstrap_means(a - b)
    low, high = float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
    diff = float(a.mean() - b.mean())
    if not (is_binary(config) and is_binary(baseline)):
        return Paired(diff, low, high, len(a))
    worse = int(((b == 1) & (a == 0)).sum())
    better = int(((b == 0) & (a == 1)).sum())
    return Paired(diff, low, high, len(a), worse, better, mcnemar_exact(worse, better))


def supports_no_loss(paired: Paired, tolerance: float = 0.01) -> bool:
    """True when the 95% interval of the difference rules out losing more than `tolerance` (e.g. 1 point)."""
    return paired.low >= -tolerance
