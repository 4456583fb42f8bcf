"""--compile / --eager: the compiled step (inductor) gives the eager tokens (slow: compiling takes minutes on 2
cores), and the flags reach LLM. Capture itself is tested fast in test_runner.py."""
from __future__ import annotations

import pytest

from unmask import LLM, DecodeConfig
from unmask.cli import build_parser

QUESTIONS = ["Tom has 17 cups. He loses 5 and doubles them. How many does he have?\n",
             "Ann has 23 pens. She buys 45 more. How many pens does she have now?\n"]


@pytest.mark.slow
def test_compiled_step_gives_the_eager_tokens():
    eager, fast = LLM("tiny-arith"), LLM("tiny-arith", compile=True)
    assert fast.make_engine().runner.compile and not eager.make_engine().runner.compile
    for preset in ("llada", "fast-dllm", "fast-dllm-dual", "wino"):
        cfg = DecodeConfig.preset(preset, gen_length=48, block_length=16)
        assert ([c.token_ids for c in fast.generate(QUESTIONS, cfg)]
                == [c.token_ids for c in eager.generate(QUESTIONS, cfg)]), preset


@pytest.mark.parametrize("argv, expected", [([], False), (["--compile"], True), (["--eager"], False)])
def test_runner_flags(argv, expected):
    parser, _ = build_parser()
    for command in (["generate", "--model", "m", "x"], ["bench", "--model", "m"]):
        assert parser.parse_args(command[:1] + argv + command[1:]).compile is expected


def test_compile_and_eager_exclude_each_other(capsys):
    parser, _ = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--compile", "--eager", "--model", "m", "x"])
