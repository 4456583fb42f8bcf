"""Quality-vs-cost plot of a bench run: score vs mean NFE and score vs seconds per example, Pareto front marked.

matplotlib is an optional extra (`pip install 'unmask[bench]'`); it is imported here only, and drawn with
the Agg canvas directly (no pyplot, no global backend switch).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Sequence

from unmask.bench.record import BenchRecord
from unmask.outputs import write_atomic

MISSING = "warning: matplotlib is not installed; skipping the plot (pip install 'unmask[bench]')"


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (score ≥ and cost ≤, one strictly), by rising cost."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front: list[int] = []
    for i in order:
        last = front[-1] if front else None
        if last is None or scores[i] > scores[last] or (costs[i], scores[i]) == (costs[last], scores[last]):
            front.append(i)
    return front


def family_lines(records: list[BenchRecord], costs: list[float]) -> dict[str, list[int]]:
    """Family → the indices of its records by rising cost, for families with two points or more (a sweep)."""
    families: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        families.setdefault(r.family or r.label, []).append(i)
    return {f: sorted(ix, key=lambda i: costs[i]) for f, ix in families.items() if len(ix) > 1}


def _panel(ax, records: list[BenchRecord], costs: list[float], xlabel: str) -> None:
    scores = [r.score for r in records]
    front = pareto_front(costs, scores)
    for n, (family, ix) in enumerate(family_lines(records, costs).items()):   # each sweep as a thin line
        ax.plot([costs[i] for i in ix], [scores[i] for i in ix], "--", lw=1.2, color=f"C{(n + 2) % 10}",
                zorder=0, label=f"{family} sweep")
    ax.plot([costs[i] for i in front], [scores[i] for i in front], "-", color="tab:orange", lw=1.5,
            zorder=1, label="Pareto front (orange); ★ baseline")
    for rank, i in enumerate(sorted(range(len(records)), key=lambda j: costs[j])):
        r, on_front = records[i], i in front
        ax.scatter(costs[i], scores[i], s=90 if r.baseline else 40, zorder=2, marker="*" if r.baseline else "o",
                   color="tab:orange" if on_front else "tab:blue")
        offset = (4, 5) if rank % 2 == 0 else (4, -11)  # alternate above/below so neighbours' labels overlap less
        ax.annotate(r.label, (costs[i], scores[i]), textcoords="offset points", xytext=offset, fontsize=7)
    positive = [c for c in costs if c > 0]
    if positive and len(positive) == len(costs) and max(positive) > 10 * min(positive):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score")
    if scores and min(scores) > 0.5:   # every config scores high: zoom in, or the fronts sit on one line at the top
        ax.set_ylim(min(scores) - 0.02, min(max(scores) + 0.02, 1.02))
    else:
        ax.set_ylim(-0.05, 1.08)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)


def plot_records(records: list[BenchRecord], path: str | Path, title: str = "") -> Path | None:
    """Write the two-panel PNG to `path`; without matplotlib print one warning and return None."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print(MISSING, file=sys.stderr)
        return None
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.12, top=0.9, wspace=0.15)
    _panel(left, records, [r.nfe for r in records], "mean NFE per example (model forwards)")
    _panel(right, records, [r.seconds_per_example for r in records], "seconds per example (batched wall time)")
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return write_atomic(Path(path), buffer.getvalue())
