"""`unmask search`: constraint-aware, resumable, and its front is re-measured and valid."""
from __future__ import annotations

import json

import pytest

optuna = pytest.importorskip("optuna")

from unmask.bench.tasks import get_task  # noqa: E402
from unmask.config import DecodeConfig  # noqa: E402
from unmask.engine.llm import LLM  # noqa: E402
from unmask.errors import ConfigError  # noqa: E402
from unmask.eval.search import Search, dominates, draw, preset_configs, set_line  # noqa: E402
from unmask.settings import parse_assignments  # noqa: E402


@pytest.fixture(scope="module")
def llm(llada_dir):
    return LLM(llada_dir, device="cpu")


def test_tiny_search_front_is_valid_remeasured_and_resumable(llm, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = Search(llm, get_task("sort"), limit=4, batch_size=4, storage=storage, study_name="t")
    search.run(3)
    assert search.decoded() == 3
    refused = [t for t in search.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all("refused" in t.user_attrs and "config" not in t.user_attrs for t in refused)
    result = search.remeasure(include_presets=False)
    assert result.front and result.trials == len(search.study.trials)
    for point in result.front:
        assert DecodeConfig.from_dict(point.config.to_dict()) == point.config  # passes validation
        assert (point.record.score, point.record.nfe) == pytest.approx(point.searched)  # re-measured, same
        rebuilt = DecodeConfig.from_dict({**DecodeConfig().to_dict(),
                                          **parse_assignments(set_line(point.config).replace("--set ", "").split())})
        assert rebuilt == point.config  # the --set line rebuilds the point
    resumed = Search(llm, get_task("sort"), limit=4, batch_size=4, storage=storage, study_name="t")
    assert resumed.decoded() == 3
    resumed.run(4)
    assert resumed.decoded() == 4  # one more decoded trial, the first three kept


def test_refused_combinations_are_pruned_by_config_validation():
    trial = optuna.trial.FixedTrial({"block_length": 48, "commit": "threshold", "alg": "confidence",
                                     "threshold": 0.9, "logits_fusion": "none", "cache": "dual",
                                     "remask": "none", "cfg_scale": 0.0})
    values = draw(trial, 48, 0)
    with pytest.raises(ConfigError, match="dual"):  # DualCache needs two blocks: the config refuses it
        DecodeConfig.from_dict(values)


def test_dominance_and_presets_fitted_to_the_task():
    assert dominates((0.9, 2.0), (0.9, 3.0)) and not dominates((0.9, 2.0), (0.9, 2.0))
    assert not dominates((0.95, 4.0), (0.9, 3.0))
    kept, skipped = preset_configs(48, 16, 0)
    assert {"llada", "fast-dllm"} <= {name for name, _ in kept}
    assert all(c.gen_length == 48 and c.seed == 0 for _, c in kept)
    assert all(isinstance(reason, str) for reason in skipped.values())


def test_search_command_writes_table_plot_and_json(llada_dir, tmp_path, capsys):
    from unmask.cli import main as cli_main

    rc = cli_main(["search", "--model", str(llada_dir), "--task", "sort", "--budget", "2", "--limit", "2",
                   "--no-presets", "--json", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["schema"] == "unmask.search/1" and doc["front"] and all("--set" in p["set"] for p in doc["front"])
    assert (tmp_path / "search-sort-nfe.png").read_bytes()[:4] == b"\x89PNG"
    assert "| point | score [95% CI] | NFE |" in (tmp_path / "search-sort-nfe.md").read_text()
    assert (tmp_path / "search.db").is_file()
    assert cli_main(["search", "--model", str(llada_dir), "--budget", "0", "--out", str(tmp_path)]) == 2
