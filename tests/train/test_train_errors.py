"""`unmask train` checks its task, paths and run directory before any work, refuses to mix runs, says when a
resume has nothing to do, and reports a damaged train state as a CheckpointError naming the file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from unmask.cli import main as cli_main
from unmask.errors import CheckpointError, ConfigError
from unmask.train import checkpoint
from unmask.train.mdlm import TrainConfig, train

SMALL = ["--task", "copy", "--train-size", "32", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
         "--ffn-hidden", "32", "--max-seq-len", "64", "--batch-size", "4", "--warmup", "1", "--eval-n", "0",
         "--save-every", "2", "--log-every", "1", "--threads", "1"]


def small_config(out: Path, **kw: object) -> TrainConfig:
    base = dict(task="copy", train_size=32, out=str(out), d_model=16, n_layers=1, n_heads=2, ffn_hidden=32,
                max_seq_len=64, steps=2, batch_size=4, warmup=1, eval_n=0, save_every=2, log_every=1, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-step run (its state saved at step 2)."""
    out = tmp_path_factory.mktemp("run") / "out"
    train(small_config(out))
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def fails(argv: list[str], capsys) -> str:
    rc = cli_main(["train", *SMALL, *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_unknown_task_fails_before_creating_the_output(tmp_path, capsys):
    out = tmp_path / "new"
    assert "unknown task 'nope'" in fails(["--out", str(out), "--steps", "2", "--task", "nope"], capsys)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--out", "--export"])
def test_output_paths_that_are_files(tmp_path, capsys, flag):
    (tmp_path / "f").write_text("x")
    argv = ["--out", str(tmp_path / "run"), flag, str(tmp_path / "f")]
    assert f"{flag} {tmp_path / 'f'} is a file, not a directory" in fails(argv + ["--steps", "2"], capsys)
    assert not (tmp_path / "run").exists()


def test_export_onto_out_is_refused(tmp_path, capsys):
    assert "is --out itself" in fails(["--out", str(tmp_path / "r"), "--export", str(tmp_path / "r")], capsys)


def test_existing_run_needs_resume_or_overwrite(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path / "run")
    before = (out / "model.safetensors").read_bytes()
    err = fails(["--out", str(out), "--steps", "2"], capsys)
    assert f"--out {out} already holds a training run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert "pass one of them" in fails(["--out", str(out), "--resume", "--overwrite"], capsys)


def test_overwrite_starts_a_clean_run(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path / "run")
    (out / "notes.txt").write_text("mine")
    assert cli_main(["train", *SMALL, "--out", str(out), "--steps", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert checkpoint.read_state(out)["step"] == 1 and (out / "notes.txt").read_text() == "mine"
    assert len((out / checkpoint.HISTORY).read_text().splitlines()) == 1  # the old run's history is gone
    assert [json.loads(line)["step"] for line in (out / checkpoint.LOG).read_text().splitlines()] == [1]


def test_resume_with_fewer_steps_than_saved_says_so(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path / "run")
    err = fails(["--out", str(out), "--resume", "--steps", "1"], capsys)
    assert "already at step 2, past --steps 1" in err
    with pytest.raises(ConfigError, match="already at step 2, past --steps 1"):
        train(small_config(out, steps=1, resume=True))


def test_resume_at_the_saved_step_says_nothing_is_left(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path / "run")
    assert cli_main(["train", *SMALL, "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert "already reached step 2 = --steps: nothing to train" in capsys.readouterr().err


def damage_moments(out: Path, change) -> None:
    file = out / checkpoint.STATE_TENSORS
    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file))


EXP_AVG = "embed.weight.exp_avg"
STATE_CASES = [
    (lambda o: (o / checkpoint.STATE_JSON).write_text('{"step": 2, "conf'), "state.json is not valid JSON"),
    (lambda o: (o / checkpoint.STATE_JSON).write_text("[2]"), "state.json must be an object"),
    (lambda o: (o / checkpoint.STATE_JSON).write_text('{"step": "2", "config": {}}'), "step must be an int ≥ 0"),
    (lambda o: (o / checkpoint.STATE_TENSORS).write_bytes((o / checkpoint.STATE_TENSORS).read_bytes()[:100]),
     "moments.safetensors is not a readable safetensors file"),
    (lambda o: (o / checkpoint.STATE_TENSORS).unlink(), "incomplete: train_state/moments.safetensors missing"),
    (lambda o: (o / "model.safetensors").unlink(), "incomplete: model.safetensors missing"),
    (lambda o: damage_moments(o, lambda t: t.pop(EXP_AVG)), f"moments.safetensors lacks {EXP_AVG}"),
    (lambda o: damage_moments(o, lambda t: t.update({EXP_AVG: torch.zeros(3, 3)})),
     f"moments.safetensors: {EXP_AVG} has shape [3, 3], the model needs"),
]


@pytest.mark.parametrize("damage, words", STATE_CASES)
def test_damaged_state_names_the_file(trained, tmp_path, capsys, damage, words):
    out = copy_run(trained, tmp_path / "run")
    damage(out)
    with pytest.raises(CheckpointError) as err:
        train(small_config(out, steps=3, resume=True))
    assert words in str(err.value)
    assert words in fails(["--out", str(out), "--resume", "--steps", "3"], capsys)


@pytest.mark.parametrize("flag, value, words", [("--lr", "nan", "lr must be a finite number"),
                                                ("--grad-clip", "inf", "grad_clip must be a finite number"),
                                                ("--weight-decay", "nan", "weight_decay must be a finite number")])
def test_non_finite_train_settings(tmp_path, capsys, flag, value, words):
    assert words in fails(["--out", str(tmp_path / "r"), flag, value], capsys)
