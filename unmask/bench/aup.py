"""AUP, accuracy under parallelism (d3LLM, hao-ai-lab/d3LLM `AUP_leaderboard`): one number for a sweep.

A method decoded at several settings gives points (ρ_i, y_i): ρ = tokens per forward (TPF), y = accuracy
in percent. Sorted by ρ, points whose accuracy is more than `offset` (5) points below the accuracy at the
smallest ρ are dropped, and

    AUP = ρ_1 · y_1 + Σ_{i≥2} ½ (ρ_i − ρ_{i−1}) (y_i W(y_i) + y_{i−1} W(y_{i−1})),
    W(y) = min(exp(−α (1 − y / y_max)), 1),   α = 3,

where y_max is the best accuracy among all methods compared (so every method is judged against the same
ceiling). The first term is the rectangle under the lowest-ρ point, the sum a trapezoid rule in which
each accuracy is discounted by how far it falls below y_max. Higher is better; the unit is percent ×
tokens per forward. d3LLM refuses a sweep whose last point lost more than 5 points; here those points are
dropped and reported (`AupResult.dropped`), so any sweep gets a value.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from unmask.errors import ConfigError

ALPHA = 3.0
OFFSET = 5.0  # percentage points


def weight(y: float, y_max: float, alpha: float = ALPHA) -> float:
    """W(y) = min(exp(−α (1 − y / y_max)), 1); 1 when y_max is 0 (nothing to fall below)."""
    if y_max <= 0:
        return 1.0
    return min(math.exp(-alpha * (1 - y / y_max)), 1.0)


@dataclass(frozen=True)
class AupResult:
    family: str
    aup: float
    points: list[tuple[float, float]]   # (TPF, accuracy %) used, by rising TPF
    dropped: list[tuple[float, float]]  # points more than OFFSET below the first one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aup(rho: Sequence[float], y: Sequence[float], y_max: float, alpha: float = ALPHA, offset: float = OFFSET,
        family: str = "") -> AupResult:
    """AUP of the points (rho[i], y[i]); y in percent (0–100), rho > 0 (module docstring)."""
    if len(rho) != len(y) or not rho:
        raise ConfigError(f"AUP needs as many TPF values as accuracies, and at least one; got {len(rho)} and {len(y)}")
    if any(r <= 0 for r in rho):
        raise ConfigError(f"AUP needs TPF > 0, got {list(rho)}")
    if any(not 0 <= v <= 100 for v in [*y, y_max]):
        raise ConfigError(f"AUP takes accuracies in percent (0–100), got {list(y)} and y_max {y_max}")
    ordered = sorted(zip(rho, y))
    floor = ordered[0][1] - offset
    kept = [p for p in ordered if p[1] >= floor]
    dropped = [p for p in ordered if p[1] < floor]
    total = kept[0][0] * kept[0][1]
    for (r0, y0), (r1, y1) in zip(kept, kept[1:]):
        total += 0.5 * (r1 - r0) * (y1 * weight(y1, y_max, alpha) + y0 * weight(y0, y_max, alpha))
    return AupResult(family, total, [(float(r), float(v)) for r, v in kept], [(float(r), float(v)) for r, v in dropped])


def aup_by_family(points: Sequence[tuple[str, float, float]]) -> list[AupResult]:
    """(family, TPF, score in [0, 1]) per config → one AupResult per family; y_max over all of them."""
    points = [p for p in points if p[1] > 0]  # a config that generated no token has no parallelism to score
    if not points:
        return []
    y_max = 100 * max(score for _, _, score in points)
    families = list(dict.fromkeys(f for f, _, _ in points))
    return [aup([t for g, t, _ in points if g == f], [100 * s for g, _, s in points if g == f], y_max, family=f)
            for f in families]
