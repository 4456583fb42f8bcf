"""Two rules' accuracy-vs-NFE fronts from one bench run: is one family's sweep above the other's?

A family's front is its Pareto points (no other point of the family has more accuracy for no more NFE) joined
by straight lines. For every point of the challenger family the table gives:
- the reference front's accuracy at the point's NFE (linear between its two neighbours; none outside the
  front's NFE range) and the difference (> 0: the point lies above the front);
- the NFE the reference front needs for the point's accuracy (its lowest NFE at that accuracy or more on the
  joined front; none when it never gets there) and the saving in percent (> 0: the point needs fewer);
- the paired comparison with the reference config nearest in NFE, on the same examples (difference, its
  paired-bootstrap 95% interval, McNemar p: `unmask/bench/stats.py`).

    python -m unmask.bench.fronts docs/bench-learn2pd-tiny-arith.json --front fast-dllm --vs learn2pd
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unmask.bench.plot import pareto_front
from unmask.bench.stats import Paired, paired_comparison
from unmask.errors import ConfigError


@dataclass(frozen=True)
class Point:
    label: str
    nfe: float
    score: float
    scores: tuple[float, ...]


def family_points(records: Sequence[dict], family: str) -> list[Point]:
    """The records of `family` as points, by rising NFE; ConfigError naming the families when there are none."""
    points = [Point(r["label"], r["nfe"], r["score"], tuple(r.get("scores") or ())) for r in records
              if r.get("family") == family]
    if not points:
        found = sorted({str(r.get("family")) for r in records})
        raise ConfigError(f"no records of family {family!r} in this run (its families: {', '.join(found)})")
    return sorted(points, key=lambda p: (p.nfe, -p.score))


def front_of(points: Sequence[Point]) -> list[Point]:
    keep = pareto_front([p.nfe for p in points], [p.score for p in points])
    return [points[i] for i in keep]


def accuracy_at(front: Sequence[Point], nfe: float) -> float | None:
    """The joined front's accuracy at `nfe`; None outside its NFE range."""
    if not front or not front[0].nfe <= nfe <= front[-1].nfe:
        return None
    for a, b in zip(front, front[1:]):
        if a.nfe <= nfe <= b.nfe:
            return a.score if b.nfe == a.nfe else a.score + (b.score - a.score) * (nfe - a.nfe) / (b.nfe - a.nfe)
    return front[0].score   # a front of one point, at its own NFE


def nfe_for(front: Sequence[Point], score: float) -> float | None:
    """The lowest NFE at which the joined front reaches `score`; None when it never does."""
    if not front or score > front[-1].score:
        return None
    if score <= front[0].score:
        return front[0].nfe
    for a, b in zip(front, front[1:]):
        if a.score < score <= b.score:
            return a.nfe + (b.nfe - a.nfe) * (score - a.score) / (b.score - a.score)
    return None


@dataclass(frozen=True)
class Versus:
    point: Point
    front_accuracy: float | None    # the reference front at the point's NFE
    front_nfe: float | None         # the reference front's NFE for the point's accuracy
    nearest: Point                  # the reference config nearest in NFE
    paired: Paired | None           # point − nearest, same examples

    @property
    def accuracy_gain(self) -> float | None:
        return None if self.front_accuracy is None else self.point.score - self.front_accuracy

    @property
    def nfe_saving(self) -> float | None:
        """(front NFE − point NFE) / front NFE: the share of the front's forwards the point saves."""
        return None if self.front_nfe is None else (self.front_nfe - self.point.nfe) / self.front_nfe


def compare(records: Sequence[dict], reference: str, challenger: str) -> list[Versus]:
    """Every point of `challenger` against the front of `reference` (module docstring)."""
    ref = family_points(records, reference)
    front = front_of(ref)
    rows = []
    for p in family_points(records, challenger):
        nearest = min(ref, key=lambda r: (abs(r.nfe - p.nfe), -r.score))
        paired = paired_comparison(p.scores, nearest.scores) if p.scores and len(p.scores) == len(nearest.scores) \
            else None
        rows.append(Versus(p, accuracy_at(front, p.nfe), nfe_for(front, p.score), nearest, paired))
    return rows


def fmt(value: float | None, spec: str) -> str:
    """`value` formatted by `spec` ("+.1f%": a number already in percent, with its sign and a % sign); – for None."""
    if value is None:
        return "–"
    return format(value, spec[:-1]) + "%" if spec.endswith("%") else format(value, spec)


def table(rows: Sequence[Versus], reference: str) -> str:
    lines = [f"| config | accuracy | NFE | {reference} front: accuracy at this NFE | Δ accuracy | "
             f"{reference} front: NFE for this accuracy | NFE saved | vs nearest {reference} (Δ [95% CI], "
             f"McNemar p) |", "|---|---|---|---|---|---|---|---|"]
    for v in rows:
        p, q = v.point, v.paired
        gain = None if v.accuracy_gain is None else 100 * v.accuracy_gain
        saved = None if v.nfe_saving is None else 100 * v.nfe_saving
        near = "–" if q is None else (f"{v.nearest.label}: {100 * q.diff:+.1f} [{100 * q.low:+.1f}, "
                                      f"{100 * q.high:+.1f}], p {fmt(q.p_value, '.2f')}")
        front = None if v.front_accuracy is None else 100 * v.front_accuracy
        lines.append(f"| {p.label} | {100 * p.score:.1f}% | {p.nfe:.2f} | {fmt(front, '.1f')} | "
                     f"{fmt(gain, '+.1f')} | {fmt(v.front_nfe, '.2f')} | {fmt(saved, '+.1f%')} | {near} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench.fronts", description=__doc__.split("\n")[0])
    parser.add_argument("json", help="the JSON an `unmask bench` run wrote")
    parser.add_argument("--front", required=True, help="the reference family (e.g. fast-dllm)")
    parser.add_argument("--vs", required=True, help="the challenger family (e.g. learn2pd)")
    args = parser.parse_args(argv)
    try:
        path = Path(args.json)
        if not path.is_file():
            raise ConfigError(f"no bench JSON at {path}")
        try:
            records = json.loads(path.read_text(encoding="utf-8"))["records"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(f"{path} is not a bench JSON with records: {e}") from None
        print(table(compare(records, args.front, args.vs), args.front))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
