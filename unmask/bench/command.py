"""`unmask bench`: compare decoding configs on one model and task; table + JSON + plot, JSON line last.

    unmask bench --model tiny-arith                       # the default story list (unmask/bench/configs.py)
    unmask bench --model M --task arith --preset llada,fast-dllm --sweep threshold=0.5,0.7,0.9 --limit 50
    unmask bench --model tiny-arith --preset fast-dllm,learn2pd --sweep fast-dllm:threshold=0.8,0.9 \
        --sweep learn2pd:filter_threshold=0.95,0.98 --no-baseline     # two fronts in one run

stdout: the Markdown table, then one line of JSON holding every record (the document of report.py).
stderr: progress and the paths written. Exit 0 on success; the caller maps UnmaskError to exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from unmask.bench.beside import beside_name, beside_table, run_beside
from unmask.bench.configs import BenchSpec, parse_assignments, parse_presets, parse_sweeps
from unmask.bench.plot import plot_records
from unmask.bench.report import (aup_results, aup_table, document, file_stem, json_line, markdown_table, run_meta,
                                 write_reports)
from unmask.bench.run import compare_with_baseline, run_bench
from unmask.bench.tasks import TASKS, get_task
from unmask.engine.llm import LLM, resolve_model
from unmask.errors import ConfigError, UnmaskError
from unmask.outputs import check_output_dir, check_output_files

DEFAULT_LIMIT = 200
DEFAULT_BATCH_SIZE = 16
DEFAULT_INVARIANCE_N = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint directory, bundled model name, or hub id")
    p.add_argument("--task", default="arith", help=f"benchmark task: {', '.join(TASKS.names())} (default arith)")
    p.add_argument("--task-arg", action="append", metavar="KEY=VALUE",
                   help="task constructor argument, e.g. path=data/gsm8k for gsm8k (repeatable)")
    p.add_argument("--preset", metavar="A,B,…",
                   help="comma-separated presets to compare (default: llada, fixed k tokens/step, fast-dllm)")
    p.add_argument("--sweep", action="append", metavar="[PRESET:]KEY=V1,V2,…",
                   help="one config per value for each preset, or only for PRESET's configs (repeatable; "
                        "several sweeps multiply)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_",
                   help="a DecodeConfig field for every config, baseline included (repeatable)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"examples (default {DEFAULT_LIMIT})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"prompts per generate call (default {DEFAULT_BATCH_SIZE})")
    p.add_argument("--split", default="test", help="task split (default test)")
    p.add_argument("--seed", type=int, default=0, help="decode seed of every config (default 0)")
    p.add_argument("--no-baseline", action="store_true", help="do not add the llada baseline")
    p.add_argument("--invariance-n", type=int, default=DEFAULT_INVARIANCE_N,
                   help=f"examples decoded again alone for the batch-invariance column (default "
                        f"{DEFAULT_INVARIANCE_N}; 0 skips it)")
    p.add_argument("--chat", action="store_true", help="wrap prompts in the model's chat template")
    p.add_argument("--device", default=None, help="cuda | cpu | cuda:1 … (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    from unmask.cli import add_runner_flags
    add_runner_flags(p)
    p.add_argument("--beside", metavar="MODEL", default=None,
                   help="a second model (e.g. the teacher of a distilled --model) decoding the same configs on the "
                        "same examples; each config compares the two, paired (unmask/bench/beside.py)")
    p.add_argument("--out", default="bench-out", help="directory for the JSON, Markdown and PNG (default bench-out)")


def register(subparsers: Any) -> str:
    """Add the `bench` subcommand to an argparse subparsers object; return its name (handler: `run`)."""
    p = subparsers.add_parser("bench", help="compare decoding configs: score, NFE, speed, memory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return "bench"


class ProgressBar:
    """A `\\r` progress bar on a terminal; one line per config elsewhere (logs stay short); nothing under CI."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24) -> None:
        self.stream, self.width = stream, width
        self.quiet = bool(os.environ.get("CI"))
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.start = time.perf_counter()
        self.label = ""

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        if self.tty:
            filled = self.width * done // max(total, 1)
            line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {elapsed:5.1f}s  {label:<24}"
            self.stream.write(line + ("\n" if done == total else ""))
        elif label != self.label or done == total:
            self.stream.write(f"bench: {done}/{total} batches, {elapsed:.1f}s, {label}\n")
        self.label = label
        self.stream.flush()


def spec_from_args(args: argparse.Namespace) -> BenchSpec:
    overrides = {"seed": args.seed, **parse_assignments(args.set_, "--set")}
    return BenchSpec(presets=parse_presets(args.preset), sweep=parse_sweeps(args.sweep),
                     overrides=overrides, baseline=not args.no_baseline)


def check_split(task: Any, split: str, limit: int) -> None:
    """The examples of `split` can be drawn (before the model is loaded); the error lists the valid splits."""
    try:
        task.examples(split, limit)
    except ConfigError as e:
        raise ConfigError(f"--split {split}: {e}") from None


def decodable(llm: LLM, configs: list, baseline: str | None = None) -> list:
    """The configs this model can decode; the others (e.g. one block of gen_length on a block-causal model) are
    skipped with the reason on stderr. The baseline cannot be skipped: every record is compared with it, so a
    baseline the model cannot decode is a ConfigError (suggesting --no-baseline), as is having none left."""
    kept = []
    for label, config in configs:
        try:
            llm.check_config(config)
            kept.append((label, config))
        except ConfigError as e:
            if label == baseline:
                raise ConfigError(f"config {label!r} cannot run on this model: {e} (drop the baseline with "
                                  f"--no-baseline)") from None
            print(f"bench: skipping {label}: {e}", file=sys.stderr)
    if not kept:
        raise ConfigError("this model can decode none of the configs (see the reasons above)")
    return kept


def run(args: argparse.Namespace) -> int:
    """Handler of `unmask bench`; raises UnmaskError (ConfigError, CheckpointError, …) on user errors."""
    out = check_output_dir(args.out, "--out")  # before any work: a bad --out must not cost the whole run
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be ≥ 1, got {value}")
    if args.invariance_n < 0:
        raise ConfigError(f"--invariance-n must be ≥ 0, got {args.invariance_n}")
    task = get_task(args.task, **parse_assignments(args.task_arg, "--task-arg", decode_fields=False))
    stem = file_stem({"model": str(args.model), "task": task.name})
    check_output_files(out, [f"{stem}.json", f"{stem}.md", f"{stem}.png"], "--out")
    check_split(task, args.split, args.limit)
    configs = spec_from_args(args).configs(task.gen_length)  # validate everything before loading the model
    if args.beside:
        resolve_model(args.beside)   # a wrong --beside fails now, not after the main model's run

    def load(model: str) -> LLM:
        return LLM(model, device=args.device, dtype=args.dtype, compile=args.compile, verifier=args.verifier,
                   context_len=args.max_context)

    def bench(llm: LLM) -> list:
        return run_bench(llm, task, decodable(llm, configs, baseline=None if args.no_baseline else configs[0][0]),
                         limit=args.limit, batch_size=args.batch_size, progress=ProgressBar(sys.stderr),
                         split=args.split, seed=args.seed, chat=args.chat, invariance_n=args.invariance_n)

    llm = load(args.model)
    records = bench(llm)
    beside = run_beside(args.beside, load, bench, records) if args.beside else []
    meta = run_meta(str(args.model), task.name, args.split, records[0].n, args.batch_size, args.seed, llm.device)
    if beside:
        meta["beside"] = str(args.beside)
    table = beside_table(records, beside, Path(str(args.model)).name, beside_name(args.beside)) if beside else ""
    records += beside
    compare_with_baseline(records)
    paths = write_reports(records, meta, args.out)
    title = f"{Path(str(args.model)).name} on {task.name} (n={records[0].n}) · {meta['device']}"
    png = plot_records(records, Path(args.out) / f"{file_stem(meta)}.png", title)
    written = [paths["json"], paths["md"]] + ([png] if png else [])
    print("bench: wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    print(markdown_table(records))
    print()
    print(aup_table(aup_results(records)))
    if table:
        print()
        print(table)
    print(json_line(document(records, meta)), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unmask bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UnmaskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
