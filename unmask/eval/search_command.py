"""`unmask search`: Optuna over the decoding design space for the Pareto front of score vs NFE (or seconds).

    unmask search --model tiny-arith --task arith --budget 60                # front of score vs NFE
    unmask search --model tiny-arith --budget 80 --objective seconds          # resumes the same SQLite study

Writes into --out: search-<task>-<objective>.md (the front, re-measured beside every shipped preset, with a
ready `--set …` line per point), .json, .png (every trial, the front, the presets) and the study database
(search.db unless --storage). stdout: the Markdown front, then one JSON line. Needs: pip install 'unmask[search]'.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from unmask.bench.configs import parse_assignments
from unmask.bench.tasks import TASKS, get_task
from unmask.engine.llm import LLM
from unmask.errors import ConfigError
from unmask.eval.search import OBJECTIVES, Search, SearchResult, set_line
from unmask.outputs import check_output_dir, write_atomic
from unmask.progress import progress

NAME = "search"


def register(subparsers: Any) -> str:
    p = subparsers.add_parser(NAME, help="search the decoding design space for the score-vs-cost Pareto front",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint directory, bundled model name, or hub id")
    p.add_argument("--task", default="arith", help=f"task: {', '.join(TASKS.names())} (default arith)")
    p.add_argument("--task-arg", action="append", metavar="KEY=VALUE", help="task constructor argument (repeatable)")
    p.add_argument("--budget", type=int, default=60, help="decoded trials the study should hold (default 60)")
    p.add_argument("--objective", choices=OBJECTIVES, default="nfe", help="cost axis of the front (default nfe)")
    p.add_argument("--limit", type=int, default=64, help="examples per trial (default 64)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default 16)")
    p.add_argument("--seed", type=int, default=0, help="decode and sampler seed (default 0)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<out>/search.db)")
    p.add_argument("--study-name", default=None, help="study name (default <task>-<objective>)")
    p.add_argument("--no-presets", action="store_true", help="do not re-measure the shipped presets beside the front")
    p.add_argument("--json", action="store_true", help="no progress bar; stdout is only the JSON line")
    p.add_argument("--device", default=None, help="cuda | cpu | cuda:N (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16")
    p.add_argument("--out", default="search-out", help="output directory (default search-out)")
    return NAME


def front_table(result: SearchResult) -> str:
    cost = "NFE" if result.objective == "nfe" else "s/example"
    lines = [f"| point | score [95% CI] | {cost} | searched score / {cost} | dominates every preset | flags |",
             "|---|---|---|---|---|---|"]
    for p in result.front:
        r = p.record
        measured = (r.nfe if result.objective == "nfe" else r.seconds_per_example) if r else float("nan")
        score = f"{r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]" if r else "–"
        lines.append(f"| {p.label} | {score} | {measured:.2f} | {p.searched[0]:.3f} / {p.searched[1]:.2f} | "
                     f"{'yes' if p.dominates_all_presets else 'no'} | `{set_line(p.config)}` |")
    if result.presets:
        lines += ["", f"| preset | score [95% CI] | {cost} |", "|---|---|---|"]
        for r in result.presets:
            value = r.nfe if result.objective == "nfe" else r.seconds_per_example
            lines.append(f"| {r.label} | {r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}] | {value:.2f} |")
    return "\n".join(lines)


def summary(result: SearchResult) -> str:
    winners = [p.label for p in result.front if p.dominates_all_presets]
    verdict = (f"{', '.join(winners)} dominate(s) every preset measured" if winners else
               "no front point dominates every preset measured")
    return (f"{result.trials} trials ({result.pruned} refused by config validation), {len(result.front)} on the "
            f"front; {verdict}.")


def plot(search: Search, result: SearchResult, path: Path) -> Path | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("warning: matplotlib is not installed; skipping the plot", file=sys.stderr)
        return None
    fig = Figure(figsize=(7, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [t for t in search.study.trials if t.values]
    ax.scatter([t.values[1] for t in done], [t.values[0] for t in done], s=12, color="0.7", label="trials")
    front = [p for p in result.front if p.record]
    costs = [p.record.nfe if result.objective == "nfe" else p.record.seconds_per_example for p in front]
    ax.plot(costs, [p.record.score for p in front], "o-", color="tab:orange", label="front (re-measured)")
    for r in result.presets:
        cost = r.nfe if result.objective == "nfe" else r.seconds_per_example
        ax.scatter(cost, r.score, marker="s", s=22, color="tab:blue")
        ax.annotate(r.label, (cost, r.score), textcoords="offset points", xytext=(3, 3), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("mean NFE per example" if result.objective == "nfe" else "seconds per example")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return write_atomic(path, buffer.getvalue())


def run(args: argparse.Namespace) -> int:
    out = check_output_dir(args.out, "--out")
    for flag, value in (("--budget", args.budget), ("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be ≥ 1, got {value}")
    task = get_task(args.task, **parse_assignments(args.task_arg, "--task-arg", decode_fields=False))
    Path(out).mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{Path(out).resolve() / 'search.db'}"
    llm = LLM(args.model, device=args.device, dtype=args.dtype)
    search = Search(llm, task, args.objective, args.limit, args.batch_size, args.seed, storage, args.study_name)
    bar = progress(max(0, args.budget - search.decoded()), f"search {task.name}", disable=args.json)
    search.run(args.budget, on_trial=lambda: bar.update(1))
    bar.close()
    result = search.remeasure(include_presets=not args.no_presets)
    stem = Path(out) / f"search-{task.name}-{args.objective}"
    table = front_table(result)
    doc = {"schema": "unmask.search/1", "model": str(args.model), "task": task.name, "objective": args.objective,
           "limit": args.limit, "seed": args.seed, "trials": result.trials, "pruned": result.pruned,
           "front": [p.to_dict() for p in result.front],
           "presets": [{"label": r.label, "score": r.score, "score_low": r.score_low, "score_high": r.score_high,
                        "nfe": r.nfe, "seconds_per_example": r.seconds_per_example} for r in result.presets],
           "skipped_presets": result.skipped_presets, "summary": summary(result)}
    write_atomic(stem.with_suffix(".json"), json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_atomic(stem.with_suffix(".md"), f"# unmask search: {args.model} on {task.name}\n\n{summary(result)}\n\n"
                                          f"{table}\n")
    png = plot(search, result, stem.with_suffix(".png"))
    print(f"search: wrote {stem}.json, {stem}.md" + (f", {png}" if png else ""), file=sys.stderr)
    if not args.json:
        print(summary(result) + "\n\n" + table)
    print(json.dumps(doc, separators=(",", ":"), allow_nan=False), flush=True)
    return 0
