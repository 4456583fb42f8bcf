"""`--sweep preset:key=v1,v2`: a sweep scoped to one preset's configs, so one bench run holds two rules' fronts."""
from __future__ import annotations

import pytest

from unmask.bench.configs import BenchSpec, parse_sweeps
from unmask.cli import main as cli_main
from unmask.errors import ConfigError


def test_a_scoped_sweep_expands_only_its_preset():
    sweep = parse_sweeps(["fast-dllm:threshold=0.8,0.9", "learn2pd:filter-threshold=0.95,0.98"])
    assert sweep == {"fast-dllm:threshold": [0.8, 0.9], "learn2pd:filter_threshold": [0.95, 0.98]}
    spec = BenchSpec(presets=["fast-dllm", "learn2pd"], sweep=sweep, overrides={"cache": "none"}, baseline=False)
    configs = dict(spec.configs(48))
    assert list(configs) == ["fast-dllm threshold=0.8", "fast-dllm threshold=0.9",
                             "learn2pd filter_threshold=0.95", "learn2pd filter_threshold=0.98"]
    assert [c.threshold for c in configs.values()][:2] == [0.8, 0.9]
    assert all(c.commit == "threshold" and c.filter_threshold is None for c in list(configs.values())[:2])
    learned = list(configs.values())[2:]
    assert [c.filter_threshold for c in learned] == [0.95, 0.98]
    assert all(c.commit == "learned" and c.threshold == 0.9 for c in learned)   # its preset's threshold, unswept
    assert all(c.cache == "none" and c.block_length == 16 for c in configs.values())


def test_scoped_and_shared_sweeps_multiply_and_scopes_follow_the_family():
    spec = BenchSpec(presets=["llada", "fast-dllm"],
                     sweep=parse_sweeps(["block_length=8,16", "fast-dllm:threshold=0.7,0.9"]), baseline=False)
    labels = [label for label, _ in spec.configs(16)]
    assert labels == ["llada block_length=8", "llada block_length=16",
                      "fast-dllm block_length=8 threshold=0.7", "fast-dllm block_length=8 threshold=0.9",
                      "fast-dllm block_length=16 threshold=0.7", "fast-dllm block_length=16 threshold=0.9"]
    default = dict(BenchSpec(sweep=parse_sweeps(["llada:seed=1,2"])).configs(48))   # "k=4" is llada's
    assert default["llada"].seed is None and "k=4 seed=2" in default and "one-shot seed=1" in default
    assert "fast-dllm t=0.9" in default and "fast-dllm t=0.9 seed=1" not in default


@pytest.mark.parametrize("items, message", [
    (["bogus:threshold=0.9"], "unknown preset 'bogus'"),
    ([":threshold=0.9"], "preset:key"),
    (["learn2pd:=0.9"], "preset:key"),
    (["learn2pd:nope=1"], "unknown decode setting 'nope'"),
    (["learn2pd:filter_threshold=high"], "filter_threshold: 'high' is not float"),
    (["learn2pd:filter_threshold="], "key=value"),
    (["learn2pd:filter_threshold=,"], "key=v1,v2"),
    (["fast-dllm:threshold=0.8", "fast-dllm:threshold=0.9"], "given twice"),
    (["threshold=0.9", "fast-dllm:threshold=0.8"], "both for every preset and for fast-dllm"),
])
def test_bad_scoped_sweeps_name_the_problem(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweeps(items)


def test_a_scoped_sweep_must_name_a_preset_of_the_run_and_not_a_set_key():
    with pytest.raises(ConfigError, match="preset 'learn2pd' is not in this run"):
        BenchSpec(presets=["fast-dllm"], sweep=parse_sweeps(["learn2pd:filter_threshold=0.9"])).configs(48)
    with pytest.raises(ConfigError, match="both in --set and --sweep"):
        BenchSpec(presets=["fast-dllm"], sweep=parse_sweeps(["fast-dllm:threshold=0.9"]),
                  overrides={"threshold": 0.8}).configs(48)


def test_the_cli_refuses_a_bad_scoped_sweep_before_loading_the_model(tmp_path, capsys):
    rc = cli_main(["bench", "--model", str(tmp_path / "missing"), "--preset", "fast-dllm",
                   "--sweep", "learn2pd:filter_threshold=0.9"])
    err = capsys.readouterr().err
    assert rc == 2 and "not in this run" in err and "Traceback" not in err
