"""Bench reports: a Markdown table for people, a JSON document for machines (file + last stdout line).

The JSON document (`SCHEMA` = "unmask.bench/1"):

    {"schema": "unmask.bench/1",
     "meta": {"model", "task", "split", "n", "batch_size", "seed", "device", "torch_version", "git_sha",
              "python", "platform", "created" (UTC ISO 8601), "argv"},
     "records": [BenchRecord.to_dict(), …],   # fields and definitions: unmask/bench/record.py
     "aup": [AupResult.to_dict(), …]}         # one per config family (unmask/bench/aup.py)

The file is indented; the stdout line is the same document, compact, on one line. NaN is never written.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from unmask.bench.aup import AupResult, aup_by_family
from unmask.bench.record import BenchRecord, device_name, git_sha
from unmask.outputs import write_atomic

SCHEMA = "unmask.bench/1"
COLUMNS = ("config", "score [95% CI]", "Δ vs baseline [95% CI]", "McNemar p", "NFE", "TPF", "pos×layers/token",
           "tok/s", "cold s", "p50 s", "p95 s", "batch-inv", "peak mem MB", "cache KB")
DEFINITIONS = (
    "score: mean task score, with its 95% interval (Wilson for right/wrong scores, else bootstrap). "
    "Δ vs baseline: score − the baseline's on the same examples, with a paired-bootstrap 95% interval; "
    "McNemar p: exact two-sided test on the examples where the two disagree. NFE: model forwards per example "
    "(the dLLM's; verifier NFE: the AR verifier's, for apd / specdiff / guided). "
    "TPF: tokens per forward (completion tokens up to EOS / forwards). tok/s: tokens / warm wall time. "
    "cold s: the config's first call (one prompt), kept out of tok/s and latency. p50/p95: per-request latency "
    "within its batch. batch-inv: fraction of checked examples whose tokens alone equal their batched tokens. "
    "peak mem: CUDA max allocated, or growth of the process peak RSS on CPU. pos×layers/token: positions × "
    "layers computed per generated token (what caches save). cache KB: mean per-request peak cache size. "
    "AUP: accuracy under parallelism over a family's TPF sweep (d3LLM; unmask/bench/aup.py).")


def run_meta(model: str, task: str, split: str, n: int, batch_size: int, seed: int,
             device: torch.device, argv: list[str] | None = None) -> dict[str, Any]:
    return {"model": model, "task": task, "split": split, "n": n, "batch_size": batch_size, "seed": seed,
            "device": device_name(device), "torch_version": torch.__version__, "git_sha": git_sha(),
            "python": platform.python_version(), "platform": platform.platform(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": list(sys.argv if argv is None else argv)}


def aup_results(records: list[BenchRecord]) -> list[AupResult]:
    """AUP per config family of the run (the baseline joins the `llada` family)."""
    return aup_by_family([(r.family or r.label, r.tokens_per_nfe, r.score) for r in records])


def document(records: list[BenchRecord], meta: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "meta": meta, "records": [r.to_dict() for r in records],
            "aup": [a.to_dict() for a in aup_results(records)]}


def json_line(doc: dict[str, Any]) -> str:
    """The whole document as one compact line (the last line a bench prints on stdout)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _versus(r: BenchRecord) -> tuple[str, str]:
    if r.paired is None:
        return "–", "–"
    p = r.paired
    shown = f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"
    return shown, ("–" if p.get("p_value") is None else f"{p['p_value']:.3f}")


def _row(r: BenchRecord, verified: bool = False) -> list[str]:
    label = f"{r.label} (baseline)" if r.baseline else r.label
    versus, p_value = _versus(r)
    invariance = "–" if r.batch_invariance is None else f"{r.batch_invariance:.2f}"
    return [label, f"{r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]", versus, p_value, f"{r.nfe:.1f}",
            *([f"{r.verifier_nfe:.1f}"] if verified else []), f"{r.tokens_per_nfe:.2f}", f"{computed_per_token(r):.0f}", f"{r.tokens_per_s:.1f}",
            f"{r.cold_seconds:.3f}", f"{r.latency_p50_s:.3f}", f"{r.latency_p95_s:.3f}", invariance,
            f"{r.peak_mem_bytes / 2**20:.1f}", f"{r.extra.get('cache_bytes_mean', 0) / 1024:.0f}"]


def computed_per_token(r: BenchRecord) -> float:
    """Positions × layers the model computed per generated token: a hardware-independent cost."""
    tokens = r.extra.get("tokens", 0)
    return r.extra.get("computed_per_example", 0) * r.n / tokens if tokens else float("nan")


def markdown_table(records: list[BenchRecord]) -> str:
    verified = any(r.verifier_nfe for r in records)   # AR-verified configs: the verifier's forwards beside NFE
    columns = COLUMNS[:5] + ("verifier NFE",) * verified + COLUMNS[5:]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_row(r, verified)) + " |" for r in records]
    return "\n".join(lines)


def aup_table(results: list[AupResult]) -> str:
    """One row per config family: AUP, the (TPF, accuracy %) points it used and those it dropped."""
    lines = ["| family | AUP | points (TPF, acc %) | dropped (> 5 points below the first) |", "|---|---|---|---|"]
    for a in results:
        used = ", ".join(f"({t:.2f}, {y:.1f})" for t, y in a.points)
        dropped = ", ".join(f"({t:.2f}, {y:.1f})" for t, y in a.dropped) or "–"
        lines.append(f"| {a.family} | {a.aup:.1f} | {used} | {dropped} |")
    return "\n".join(lines)


def markdown_report(records: list[BenchRecord], meta: dict[str, Any]) -> str:
    """A heading with the setup, the table, and the definitions of the columns."""
    return "\n".join([
        f"# unmask bench: {meta['model']} on {meta['task']}",
        "",
        f"{meta['n']} {meta['split']} examples, batch size {meta['batch_size']}, seed {meta['seed']}; "
        f"{meta['device']}; torch {meta['torch_version']}; git {meta['git_sha']}; {meta['created']}.",
        "",
        markdown_table(records),
        "",
        aup_table(aup_results(records)),
        "",
        DEFINITIONS,
        "",
    ])


def file_stem(meta: dict[str, Any]) -> str:
    """"<model dir name>-<task>", e.g. "tiny-arith-arith"."""
    return f"{Path(str(meta['model'])).name}-{meta['task']}"


def write_reports(records: list[BenchRecord], meta: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write <stem>.json and <stem>.md into `out_dir` (created), each atomically; return {"json": path, "md": path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(meta)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    write_atomic(paths["json"], json.dumps(document(records, meta), indent=2, allow_nan=False) + "\n")
    write_atomic(paths["md"], markdown_report(records, meta))
    return paths
