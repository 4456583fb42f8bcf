"""`unmask bench --beside MODEL`: a second model decodes the same configs on the same examples in the same run,
and every config of --model is compared with it, example by example."""
from __future__ import annotations

import json

import pytest

from tests.tiny_models import write_tiny_model
from unmask.bench.stats import paired_comparison
from unmask.cli import main as cli_main


def test_beside_decodes_the_same_configs_and_pairs_them(tmp_path, capsys):
    student = write_tiny_model(tmp_path / "student", latent_conditioning={"features": 4})
    teacher = write_tiny_model(tmp_path / "teacher", seed=1)
    rc = cli_main(["bench", "--model", str(student), "--beside", str(teacher), "--task", "arith", "--preset", "llada",
                   "--sweep", "steps=1,2", "--set", "gen_length=8", "--set", "block_length=8", "--no-baseline",
                   "--limit", "6", "--batch-size", "3", "--invariance-n", "3", "--out", str(tmp_path / "out")])
    assert rc == 0
    stdout = capsys.readouterr().out
    doc = json.loads(stdout.strip().splitlines()[-1])
    labels = [r["label"] for r in doc["records"]]
    assert labels == ["llada steps=1", "llada steps=2", "teacher: llada steps=1", "teacher: llada steps=2"]
    assert doc["meta"]["beside"] == str(teacher)
    mine, theirs = doc["records"][:2], doc["records"][2:]
    for a, b in zip(mine, theirs):
        assert a["config"] == b["config"] and not b["baseline"] and a["n"] == b["n"] == 6
        assert a["nfe"] == a["config"]["steps"] and b["nfe"] == b["config"]["steps"]
        vs = a["extra"]["vs_beside"]
        assert vs["model"] == "teacher"
        assert vs["diff"] == pytest.approx(paired_comparison(a["scores"], b["scores"]).diff)
        assert a["batch_invariance"] == 1.0    # the λ-conditioned student: same tokens alone and batched
    assert "| config | student | teacher | Δ [95% CI] |" in stdout and "| llada steps=2 |" in stdout


def test_an_unknown_beside_model_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    import unmask.bench.command as command

    def no_run(*args, **kwargs):
        raise AssertionError("the main model's bench ran before --beside was checked")

    monkeypatch.setattr(command, "run_bench", no_run)
    rc = cli_main(["bench", "--model", "tiny-arith", "--beside", str(tmp_path / "absent"), "--preset", "llada",
                   "--no-baseline", "--limit", "2", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "absent" in capsys.readouterr().err and not (tmp_path / "out").exists()
