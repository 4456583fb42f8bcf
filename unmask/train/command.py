"""`unmask train`: flags generated from `TrainConfig` (arXiv 2502.09992 SFT objective, see mdlm.py).

    unmask train --task arith --out runs/tiny-arith --steps 3000 [--resume] [--export unmask/assets/tiny-arith]
    python -m unmask.train.command ...   (same flags, before the subcommand is wired into unmask.cli)
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from unmask.errors import ConfigError, UnmaskError
from unmask.outputs import check_output_dir
from unmask.train.mdlm import TrainConfig


def _flag_type(annotation: Any, config_cls: type = TrainConfig) -> type:
    """str | int | float from a field annotation ("int | None" → int)."""
    hint = typing.get_type_hints(config_cls)[annotation] if isinstance(annotation, str) else annotation
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    return args[0]


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One --flag per field of a config dataclass (type and help from the field); shared with `unmask distill`."""
    for f in fields(config_cls):
        flag, kind = "--" + f.name.replace("_", "-"), _flag_type(f.name, config_cls)
        default = f.default if f.default is not MISSING else None
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=kind, default=default, help=f"{f.metadata['help']} (default: {default})")


def add_flags(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, TrainConfig)
    parser.add_argument("--export", default=None, help="after training, copy the shippable files here "
                        "(config, weights, tokenizer, model card; never the train state)")
    parser.add_argument("--overwrite", action="store_true", help="start a new run in an --out that holds one "
                        "(its weights, state, log and history are deleted first); without it, that is refused")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `train` to the CLI's subparsers; the handler is `run`."""
    parser = subparsers.add_parser("train", help="train a small masked-diffusion model on a bench task",
                                   description=__doc__.split("\n")[0])
    add_flags(parser)
    parser.set_defaults(handler=run)
    return parser


def config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def preflight(cfg: TrainConfig, export: str | None, overwrite: bool) -> None:
    """Everything checkable before a directory is created or a step is taken: task, paths, the run in --out."""
    from unmask.train.checkpoint import has_state, make_task, read_state, run_files
    from unmask.train.mdlm import check_resume_steps

    make_task(cfg)  # an unknown --task or task argument fails here
    out = check_output_dir(cfg.out, "--out")
    if export is not None:
        dest = check_output_dir(export, "--export")
        if dest.resolve() == out.resolve():
            raise ConfigError(f"--export {dest} is --out itself; export copies the shippable files elsewhere")
    if cfg.init_from is not None and not (Path(cfg.init_from) / "model.safetensors").is_file():
        raise ConfigError(f"--init-from {cfg.init_from}: need config.json and model.safetensors there")
    if cfg.resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
    earlier = run_files(out)
    if earlier and not cfg.resume and not overwrite:
        raise ConfigError(f"--out {out} already holds a training run ({', '.join(earlier[:3])}"
                          f"{', …' if len(earlier) > 3 else ''}); pass --resume to continue it or --overwrite "
                          "to start over")
    if cfg.resume and has_state(out):
        check_resume_steps(cfg, read_state(out)["step"], announce=False)


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Train per the flags, write the model card, optionally export; prints the final stats as JSON."""
    from unmask.train.card import write_card
    from unmask.train.checkpoint import HISTORY, clear_run, export, read_history
    from unmask.train.mdlm import train

    try:
        cfg = config_from(args)
        preflight(cfg, args.export, args.overwrite)
    except UnmaskError as e:
        print(f"unmask train: error: {e}", file=sys.stderr)
        return 2
    argv = argv if argv is not None else [a for i, a in enumerate(sys.argv[1:]) if i or a != "train"]
    command = "unmask train " + shlex.join(argv)
    if args.overwrite:
        clear_run(cfg.out)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with (Path(cfg.out) / HISTORY).open("a") as f:  # every invocation, so a resumed run's card lists them all
        f.write(command + "\n")
    stats = train(cfg)
    write_card(cfg, stats, read_history(cfg.out))
    if args.export:
        export(cfg.out, args.export)
    print(json.dumps(stats, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unmask train", description=__doc__.split("\n")[0])
    add_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parser.parse_args(argv), argv)
    except UnmaskError as e:
        print(f"unmask train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
