"""unmask.bench.fronts: one family's sweep against another's accuracy-vs-NFE front, from a bench JSON."""
from __future__ import annotations

import json

import pytest

from unmask.bench.fronts import Point, accuracy_at, compare, front_of, main, nfe_for
from unmask.bench.plot import family_lines
from unmask.bench.record import BenchRecord
from unmask.errors import ConfigError


def record(label: str, family: str, nfe: float, scores: list[float]) -> dict:
    return {"label": label, "family": family, "nfe": nfe, "score": sum(scores) / len(scores), "scores": scores}


def run_records() -> list[dict]:
    # threshold front: (2, 0.5), (3, 0.75), (4, 1.0); (3.5, 0.5) is dominated
    return [record("t=0.7", "thr", 2.0, [1, 1, 0, 0]), record("t=0.9", "thr", 3.0, [1, 1, 1, 0]),
            record("t=0.95", "thr", 4.0, [1, 1, 1, 1]), record("t=bad", "thr", 3.5, [1, 0, 1, 0]),
            record("f=0.9", "learned", 2.5, [1, 1, 1, 0]), record("f=0.99", "learned", 5.0, [1, 1, 1, 1])]


def test_the_front_is_joined_by_straight_lines():
    points = [Point(r["label"], r["nfe"], r["score"], ()) for r in run_records() if r["family"] == "thr"]
    front = front_of(sorted(points, key=lambda p: p.nfe))
    assert [p.label for p in front] == ["t=0.7", "t=0.9", "t=0.95"]
    assert accuracy_at(front, 2.5) == pytest.approx(0.625) and accuracy_at(front, 4.0) == 1.0
    assert accuracy_at(front, 1.0) is None and accuracy_at(front, 4.5) is None     # outside the swept range
    assert nfe_for(front, 0.75) == pytest.approx(3.0) and nfe_for(front, 0.875) == pytest.approx(3.5)
    assert nfe_for(front, 0.4) == 2.0 and nfe_for(front, 1.01) is None


def test_each_challenger_point_is_placed_against_the_front_and_its_nearest_config():
    above, outside = compare(run_records(), "thr", "learned")
    assert above.front_accuracy == pytest.approx(0.625) and above.accuracy_gain == pytest.approx(0.125)
    assert above.front_nfe == pytest.approx(3.0) and above.nfe_saving == pytest.approx(1 / 6)
    assert above.nearest.label in ("t=0.7", "t=0.9") and above.paired.n == 4
    assert outside.front_accuracy is None and outside.front_nfe == 4.0 and outside.nfe_saving == pytest.approx(-0.25)
    assert outside.nearest.label == "t=0.95" and outside.paired.diff == 0


def test_the_command_prints_the_table_and_names_bad_input(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"records": run_records()}))
    assert main([str(path), "--front", "thr", "--vs", "learned"]) == 0
    out = capsys.readouterr().out
    assert "| f=0.9 | 75.0% | 2.50 | 62.5 | +12.5 | 3.00 | +16.7% |" in out
    assert main([str(path), "--front", "nope", "--vs", "learned"]) == 2
    assert "no records of family 'nope'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json"), "--front", "thr", "--vs", "learned"]) == 2
    path.write_text("[1]")
    assert main([str(path), "--front", "thr", "--vs", "learned"]) == 2
    assert "not a bench JSON" in capsys.readouterr().err


def test_the_plot_draws_one_line_per_swept_family():
    recs = [BenchRecord(label=r["label"], config={}, task="t", n=4, score=r["score"], nfe=r["nfe"], tokens_per_nfe=1,
                        tokens_per_s=1, latency_p50_s=0, latency_p95_s=0, peak_mem_bytes=0, seconds=1,
                        seconds_per_example=1, device="cpu", torch_version="", git_sha="", family=r["family"])
            for r in run_records()] + [BenchRecord(label="alone", config={}, task="t", n=4, score=0.5, nfe=1,
                                                   tokens_per_nfe=1, tokens_per_s=1, latency_p50_s=0, latency_p95_s=0,
                                                   peak_mem_bytes=0, seconds=1, seconds_per_example=1, device="cpu",
                                                   torch_version="", git_sha="", family="solo")]
    lines = family_lines(recs, [r.nfe for r in recs])
    assert lines == {"thr": [0, 1, 3, 2], "learned": [4, 5]}      # by rising cost; a one-point family has none


def test_compare_refuses_a_missing_family():
    with pytest.raises(ConfigError, match="its families: learned, thr"):
        compare(run_records(), "fast-dllm", "learned")
