"""`unmask lm-eval …`: lm-evaluation-harness's own command line, with the `unmask` model registered.

    unmask lm-eval --model unmask --model_args pretrained=tiny-arith,preset=fast-dllm --tasks gsm8k

Every argument after `lm-eval` goes to lm_eval unchanged (`unmask lm-eval --help` prints lm_eval's help).
lm_eval (0.4) finds models only in its own package, so a plain `lm_eval --model unmask` cannot see ours;
this command imports the adapter first. Needs the eval extra: pip install 'unmask[eval]'.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from unmask.errors import ConfigError

NAME = "lm-eval"


def register(subparsers: Any) -> str:
    p = subparsers.add_parser(NAME, help="lm-evaluation-harness with the unmask model (pip install 'unmask[eval]')",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              add_help=False, prefix_chars="\x00")  # every flag is lm_eval's
    p.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="arguments for lm_eval")
    return NAME


def run(args: argparse.Namespace) -> int:
    try:
        import unmask.eval.lm_eval_adapter  # noqa: F401  (registers the "unmask" model)
        from lm_eval.__main__ import cli_evaluate
    except ImportError as e:
        raise ConfigError(f"unmask lm-eval needs lm-evaluation-harness: pip install 'unmask[eval]' ({e})") from None
    argv = sys.argv
    sys.argv = ["lm_eval", *args.lm_eval_args]
    try:
        cli_evaluate()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    finally:
        sys.argv = argv
    return 0


def main() -> int:
    """`python -m unmask.eval.lm_eval_command …`: the same, without the unmask CLI in front."""
    return run(argparse.Namespace(lm_eval_args=sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
