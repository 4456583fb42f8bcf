"""`unmask bench`: outputs are well formed, the last stdout line is the JSON, configs expand as documented."""
from __future__ import annotations

import json
import sys

import pytest

from unmask.bench.configs import BenchSpec, parse_assignments, parse_presets, parse_sweeps
from unmask.bench.plot import pareto_front, plot_records
from unmask.bench.record import BenchRecord, percentile
from unmask.cli import main as cli_main
from unmask.errors import ConfigError


def test_bench_writes_json_markdown_png_and_ends_with_json(llada_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli_main(["bench", "--model", str(llada_dir), "--task", "arith", "--preset", "fast-dllm",
                   "--set", "gen_length=8", "--limit", "4", "--batch-size", "2", "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["schema"] == "unmask.bench/1"
    assert [r["label"] for r in last["records"]] == ["llada", "fast-dllm"]
    base, fast = last["records"]
    assert base["baseline"] and not fast["baseline"]
    for r in last["records"]:
        assert r["n"] == 4 and r["config"]["gen_length"] == 8 and 0 <= r["score"] <= 1
        assert 1 <= r["nfe"] <= 8 and r["tokens_per_nfe"] > 0 and r["seconds"] > 0
        assert r["latency_p50_s"] <= r["latency_p95_s"] and r["peak_mem_bytes"] >= 0
        assert r["device"] and r["torch_version"] and r["git_sha"]
    assert base["config"]["steps"] == 8 and base["config"]["commit"] == "linear"
    assert "| config | score [95% CI] | Δ vs baseline [95% CI] | McNemar p | NFE | TPF |" in stdout
    assert "| llada (baseline) |" in stdout and "| family | AUP |" in stdout
    for r in last["records"]:  # the new columns: interval, per-example scores, cold time, invariance
        assert r["score_low"] <= r["score"] <= r["score_high"] and len(r["scores"]) == 4
        assert r["cold_seconds"] > 0 and r["batch_invariance"] == 1.0 and r["extra"]["invariance_n"] == 4
    assert base["paired"] is None and fast["paired"]["n"] == 4
    assert fast["paired"]["diff"] == pytest.approx(fast["score"] - base["score"])
    assert [a["family"] for a in last["aup"]] == ["llada", "fast-dllm"]

    stem = f"{llada_dir.name}-arith"
    doc = json.loads((out / f"{stem}.json").read_text())
    assert doc["records"] == last["records"] and doc["meta"]["n"] == 4
    md = (out / f"{stem}.md").read_text()
    assert md.count("\n| ") == 6  # header + 2 records, AUP header + 2 families (separator rows start with "|-")
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_list_tells_the_story():
    configs = dict(BenchSpec().configs(48))
    assert list(configs) == ["llada", "k=2", "k=4", "k=8", "k=16", "one-shot", "fast-dllm t=0.9",
                             "fast-dllm t=0.7", "fast-dllm t=0.5", "fast-dllm-factor"]
    assert (configs["llada"].steps, configs["llada"].block_length) == (48, 16)
    assert [configs[f"k={k}"].steps for k in (2, 4, 8, 16)] == [24, 12, 6, 3]
    assert (configs["one-shot"].steps, configs["one-shot"].block_length) == (1, 48)
    assert configs["fast-dllm t=0.7"].threshold == 0.7 and configs["fast-dllm t=0.7"].block_length == 16
    assert all(c.gen_length == 48 for c in configs.values())
    short = dict(BenchSpec().configs(24))  # 16 does not divide 24: one block
    assert short["llada"].block_length == 24 and "k=16" not in short


def test_sweep_expands_each_preset_and_not_the_baseline():
    spec = BenchSpec(presets=["fast-dllm", "fast-dllm-factor"],
                     sweep=parse_sweeps(["threshold=0.5,0.9", "block_length=8,16"]),
                     overrides=parse_assignments(["seed=3"]))
    labels = [label for label, _ in spec.configs(16)]
    assert labels[0] == "llada" and len(labels) == 1 + 2 * 4
    assert "fast-dllm threshold=0.9 block_length=8" in labels
    configs = dict(spec.configs(16))
    assert configs["fast-dllm threshold=0.5 block_length=8"].block_length == 8
    assert all(c.seed == 3 for c in configs.values())
    no_base = BenchSpec(presets=["llada"], sweep={"steps": [8, 16]}, baseline=False).configs(16)
    assert [label for label, _ in no_base] == ["llada steps=8", "llada steps=16"]
    by_length = dict(BenchSpec(presets=["llada"], sweep={"gen_length": [16, 32]}).configs(48))
    assert [(c.gen_length, c.steps) for c in by_length.values()] == [(48, 48), (16, 16), (32, 32)]


def test_set_overrides_every_config_and_duplicates_of_the_baseline_are_dropped():
    spec = BenchSpec(presets=["llada", "fast-dllm"], overrides=parse_assignments(["gen_length=32", "cache=none"]))
    configs = spec.configs(48)
    assert [label for label, _ in configs] == ["llada", "fast-dllm"]
    assert all(c.gen_length == 32 and c.cache == "none" for _, c in configs)


@pytest.mark.parametrize("build", [
    lambda: parse_assignments(["nope=1"]),                    # unknown field
    lambda: parse_assignments(["threshold=high"]),            # not a number
    lambda: parse_assignments(["threshold"]),                 # no '='
    lambda: parse_sweeps(["threshold="]),                     # no values
    lambda: parse_presets("llada,bogus"),                     # unknown preset
    lambda: BenchSpec(overrides={"steps": 7}).configs(48),    # 7 steps for 3 blocks
    lambda: BenchSpec(sweep={"seed": [1]}, overrides={"seed": 2}).configs(48),  # both --set and --sweep
])
def test_bad_settings_raise_config_error(build):
    with pytest.raises(ConfigError):
        build()


def test_bad_settings_exit_2_before_loading_the_model(tmp_path, capsys):
    rc = cli_main(["bench", "--model", str(tmp_path / "missing"), "--preset", "bogus"])
    assert rc == 2 and "bogus" in capsys.readouterr().err
    rc = cli_main(["bench", "--model", str(tmp_path / "missing"), "--set", "steps=7"])
    assert rc == 2 and "steps" in capsys.readouterr().err


def test_pareto_front():
    costs = [1, 2, 2, 3, 4, 5, 5]
    scores = [0.1, 0.5, 0.4, 0.5, 0.9, 0.9, 0.8]
    assert pareto_front(costs, scores) == [0, 1, 4]  # 2 and 6 dominated; 3 ties 1 at more cost; 5 ties 4
    assert pareto_front([1, 1], [0.5, 0.5]) == [0, 1]  # identical points do not dominate each other
    assert pareto_front([], []) == []


def test_percentile():
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0


def test_plot_without_matplotlib_warns_and_skips(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    record = BenchRecord("x", {}, "arith", 1, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0, 0.1, 0.1, "cpu", "2", "sha")
    assert plot_records([record], tmp_path / "p.png") is None
    assert "unmask[bench]" in capsys.readouterr().err and not (tmp_path / "p.png").exists()
