"""`unmask distill`: flags generated from `DistillConfig` (dParallel certainty forcing by default, or Di4C's
λ-conditioned mixture student with --method di4c; see train/distill.py).

    unmask distill --teacher tiny-arith --out runs/tiny-arith-dparallel --steps 1600 [--resume]
                   [--export unmask/assets/tiny-arith-dparallel]
    unmask distill --method di4c --teacher tiny-arith --out runs/tiny-arith-di4c [--resume]
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from unmask.errors import ConfigError, UnmaskError
from unmask.outputs import check_output_dir
from unmask.train.distill import DistillConfig

DECODE_DEFAULTS = "unmask_decode.json"  # the teacher's default decode settings, shipped with the student too


def add_flags(parser: argparse.ArgumentParser) -> None:
    from unmask.train.command import add_config_flags

    add_config_flags(parser, DistillConfig)
    parser.add_argument("--export", default=None, help="after distilling, copy the shippable files here "
                        "(config, weights, tokenizer, decode defaults, model card; never the train state)")
    parser.add_argument("--overwrite", action="store_true", help="start a new run in an --out that holds one "
                        "(its weights, state, log, history and teacher trajectories are deleted first)")


def register(subparsers: Any) -> str:
    """Add `distill` to the CLI's subparsers; the handler is `run`."""
    parser = subparsers.add_parser("distill", help="step-distil a shipped model (dParallel certainty forcing, or --method di4c)",
                                   description=__doc__.split("\n")[0])
    add_flags(parser)
    parser.set_defaults(handler=run)
    return "distill"


def config_from(args: argparse.Namespace) -> DistillConfig:
    return DistillConfig(**{f.name: getattr(args, f.name) for f in fields(DistillConfig)})


def preflight(cfg: DistillConfig, export: str | None, overwrite: bool) -> None:
    """Everything checkable before a directory is created or the teacher decodes anything."""
    from unmask.train.checkpoint import has_state, make_task, read_state, run_files
    from unmask.train.mdlm import check_resume_steps

    make_task(cfg)
    cfg.teacher_dir()        # an unknown teacher fails here, naming the bundled models
    cfg.d_model              # and one that is not a bidirectional LLaDA checkpoint
    out = check_output_dir(cfg.out, "--out")
    if export is not None and check_output_dir(export, "--export").resolve() == out.resolve():
        raise ConfigError(f"--export {export} is --out itself; export copies the shippable files elsewhere")
    if cfg.resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
    earlier = run_files(out) + (["teacher/"] if (out / "teacher").is_dir() else [])
    if earlier and not cfg.resume and not overwrite:
        raise ConfigError(f"--out {out} already holds a run ({', '.join(earlier[:3])}); pass --resume to "
                          "continue it or --overwrite to start over")
    if cfg.resume and has_state(out):
        check_resume_steps(cfg, read_state(out)["step"], announce=False)


def export(cfg: DistillConfig, dest: str) -> None:
    from unmask.train.checkpoint import export as export_run

    export_run(cfg.out, dest)
    if (Path(cfg.out) / DECODE_DEFAULTS).is_file():
        shutil.copy2(Path(cfg.out) / DECODE_DEFAULTS, Path(dest) / DECODE_DEFAULTS)


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Distil per the flags, write the model card, optionally export; prints the final stats as JSON."""
    from unmask.train.checkpoint import HISTORY, clear_run, read_history
    from unmask.train.distill import distill
    from unmask.train.distill_card import write_card

    try:
        cfg = config_from(args)
        preflight(cfg, args.export, args.overwrite)
    except UnmaskError as e:
        print(f"unmask distill: error: {e}", file=sys.stderr)
        return 2
    argv = argv if argv is not None else [a for i, a in enumerate(sys.argv[1:]) if i or a != "distill"]
    out = Path(cfg.out)
    if args.overwrite:
        clear_run(out)
        shutil.rmtree(out / "teacher", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with (out / HISTORY).open("a") as f:  # every invocation, so a resumed run's card lists them all
        f.write("unmask distill " + shlex.join(argv) + "\n")
    if (cfg.teacher_dir() / DECODE_DEFAULTS).is_file():
        shutil.copy2(cfg.teacher_dir() / DECODE_DEFAULTS, out / DECODE_DEFAULTS)
    stats = distill(cfg)
    write_card(cfg, stats, read_history(out))
    if args.export:
        export(cfg, args.export)
    print(json.dumps(stats, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unmask distill", description=__doc__.split("\n")[0])
    add_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parser.parse_args(argv), argv)
    except UnmaskError as e:
        print(f"unmask distill: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
