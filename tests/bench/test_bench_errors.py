"""`unmask bench` refuses bad output paths and splits before loading the model, and writes results atomically."""
from __future__ import annotations

import os

import pytest

from unmask.cli import main as cli_main
from unmask.errors import ConfigError
from unmask.outputs import check_output_dir, write_atomic

MISSING_MODEL = "/no/such/model"  # any model error would mean the checks came too late


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    return path


def bench(argv, capsys):
    rc = cli_main(["bench", "--model", MISSING_MODEL, "--limit", "2", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert MISSING_MODEL not in err  # refused before the model was looked at
    return err


def test_out_pointing_at_a_file(a_file, capsys):
    assert f"--out {a_file} is a file, not a directory" in bench(["--out", str(a_file)], capsys)
    assert "which is a file" in bench(["--out", str(a_file / "sub")], capsys)


def test_out_in_an_unwritable_place(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK) and os.geteuid() == 0:  # root ignores the mode bits: use a place nobody writes
            target = "/proc/self/unmask-out"
        else:
            target = str(ro / "out")
        assert "--out" in bench(["--out", target], capsys) and "cannot write" in bench(["--out", target], capsys)
    finally:
        os.chmod(ro, 0o700)


def test_result_file_names_taken_by_directories(tmp_path, capsys):
    (tmp_path / "model-arith.json").mkdir()
    err = bench(["--out", str(tmp_path), "--model", "model"], capsys)
    assert "model-arith.json exist as directories" in err


@pytest.mark.parametrize("split", ["validation", "dev"])
def test_unknown_split_lists_the_valid_ones(tmp_path, capsys, split):
    err = bench(["--out", str(tmp_path), "--split", split], capsys)
    assert f"--split {split}: unknown split '{split}'; choose one of: train, test" in err


@pytest.mark.parametrize("flag", ["--limit", "--batch-size"])
def test_limit_and_batch_size_checked_first(tmp_path, capsys, flag):
    assert f"{flag} must be ≥ 1, got 0" in bench(["--out", str(tmp_path), flag, "0"], capsys)


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "deep" / "r.json"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["r.json"]
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigError, match="cannot write"):
        write_atomic(tmp_path / "dir.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "dir.json"]


def test_check_output_dir_creates_nothing(tmp_path):
    out = check_output_dir(tmp_path / "a" / "b", "--out")
    assert out == tmp_path / "a" / "b" and list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="--out is empty"):
        check_output_dir("", "--out")
