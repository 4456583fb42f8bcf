"""`unmask bench --beside MODEL`: a second model (e.g. a distilled model's teacher) decodes the same configs on the
same examples in the same run, so each config compares the two models at equal settings (equal steps, equal
threshold), example by example.

Its records are labelled `<name>: <config>` (family likewise, so AUP stays per model) and never count as the
run's baseline; each record of --model gets `extra["vs_beside"]`: the paired comparison (--model − beside, same
examples; stats.Paired) with the beside model's record of the same config, also printed as its own table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from unmask.bench.record import BenchRecord
from unmask.bench.stats import paired_comparison


def beside_name(model: str) -> str:
    return Path(str(model)).name or str(model)


def relabel(records: list[BenchRecord], name: str) -> list[BenchRecord]:
    """The beside model's records, labelled by its name and never the baseline."""
    for r in records:
        r.label, r.family, r.baseline = f"{name}: {r.label}", f"{name}: {r.family}", False
    return records


def by_config(beside: list[BenchRecord], name: str) -> dict[str, BenchRecord]:
    """The beside model's records by the config label they share with --model's (their `<name>: ` prefix off)."""
    return {r.label[len(name) + 2:]: r for r in beside}


def attach_comparisons(main: list[BenchRecord], beside: list[BenchRecord], name: str) -> None:
    """extra["vs_beside"] on every --model record whose config the beside model also decoded."""
    by_label = by_config(beside, name)
    for r in main:
        other = by_label.get(r.label)
        if other is not None:
            r.extra["vs_beside"] = {"model": name, **paired_comparison(r.scores, other.scores).to_dict()}


def beside_table(main: list[BenchRecord], beside: list[BenchRecord], model: str, name: str) -> str:
    """| config | --model score | beside score | Δ [95% CI] | McNemar p | NFE of each |, one row per shared config."""
    other = by_config(beside, name)
    lines = [f"| config | {model} | {name} | Δ [95% CI] | McNemar p | NFE ({model} / {name}) |",
             "|---|---|---|---|---|---|"]
    for r in main:
        vs = r.extra.get("vs_beside")
        if vs is None:
            continue
        p = f"{vs['p_value']:.3g}" if vs.get("p_value") is not None else "–"
        lines.append(f"| {r.label} | {r.score:.3f} | {other[r.label].score:.3f} | {vs['diff']:+.3f} [{vs['low']:+.3f}, "
                     f"{vs['high']:+.3f}] | {p} | {r.nfe:.2f} / {other[r.label].nfe:.2f} |")
    return "\n".join(lines)


def run_beside(model: str, load: Callable[[str], Any], bench: Callable[[Any], list[BenchRecord]],
               main: list[BenchRecord]) -> list[BenchRecord]:
    """Load the beside model, run the same bench on it (`bench(llm)`), relabel, attach the comparisons."""
    name = beside_name(model)
    records = relabel(bench(load(model)), name)
    attach_comparisons(main, records, name)
    return records
