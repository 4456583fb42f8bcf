"""`unmask train-filter`: train the Learn2PD commit filter of a model (unmask/train/filter.py).

    unmask train-filter --model tiny-arith --task arith --out runs/learn2pd
    cp runs/learn2pd/learn2pd_filter.* <model dir>/     # then `--set commit=learned` finds it beside the model
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from unmask.decoding.filter_head import check_features
from unmask.errors import ConfigError
from unmask.outputs import check_output_dir
from unmask.train.filter import FilterConfig

LISTS = {"teachers": (str, ";"), "round_thresholds": (float, ","), "val_thresholds": (float, ","),
         "features": (str, ",")}   # tuple fields: item type, separator


def register(subparsers: Any) -> str:
    parser = subparsers.add_parser("train-filter", help="train the Learn2PD commit filter (commit=learned) of a model",
                                   description=__doc__.split("\n")[0])
    for f in fields(FilterConfig):
        if f.name == "log":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name in LISTS:
            kind, sep = LISTS[f.name]
            parser.add_argument(flag, default=sep.join(map(str, f.default)),
                                help=f"{sep!r}-separated (default: {sep.join(map(str, f.default))})")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=f"(default: {f.default})")
    parser.set_defaults(handler=run)
    return "train-filter"


def config_from(args: argparse.Namespace) -> FilterConfig:
    values = {}
    for f in fields(FilterConfig):
        if f.name == "log":
            continue
        value = getattr(args, f.name)
        if f.name in LISTS:
            kind, sep = LISTS[f.name]
            try:
                value = tuple(kind(v) for v in value.split(sep) if v.strip())
            except ValueError as e:
                raise ConfigError(f"--{f.name.replace('_', '-')}: {e}") from None
        values[f.name] = value
    for name in ("prompts", "epochs", "batch_size", "hidden", "threads", "rounds", "reference_every"):
        if values[name] < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {values[name]}")
    if values["held_out"] < 0:
        raise ConfigError(f"--held-out must be ≥ 0, got {values['held_out']}")
    if values["val_prompts"] < 0:
        raise ConfigError(f"--val-prompts must be ≥ 0 (0: no threshold validation), got {values['val_prompts']}")
    if values["block_length"] < 0:
        raise ConfigError(f"--block-length must be ≥ 0 (0: one window), got {values['block_length']}")
    if not values["lr"] > 0:
        raise ConfigError(f"--lr must be > 0, got {values['lr']}")
    try:
        check_features(values["features"])
    except ValueError as e:
        raise ConfigError(f"--features: {e}") from None
    return FilterConfig(**values)


def run(args: argparse.Namespace) -> int:
    from unmask.train.filter import train_filter

    cfg = config_from(args)
    check_output_dir(cfg.out, "--out")
    train_filter(cfg)
    return 0
