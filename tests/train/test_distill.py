"""`unmask distill`: cached teacher trajectories, exact resume, the command line and its errors (a tiny teacher)."""
from __future__ import annotations

import json

import pytest
import torch

from unmask.errors import ConfigError
from unmask.models.loader import load_model
from unmask.train import checkpoint, trajectories
from unmask.train.distill import DistillConfig, distill
from unmask.train.mdlm import train
from tests.train.resume_check import interrupted_and_resumed
from tests.train.test_mdlm import small_config


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """A tiny LLaDA-layout teacher on the short `copy` task (2 steps of `unmask train`)."""
    out = tmp_path_factory.mktemp("teacher")
    train(small_config(str(out), steps=2))
    return str(out)


def config(teacher: str, out, **kw: object) -> DistillConfig:
    base = dict(teacher=teacher, task="copy", train_size=12, out=str(out), keep_wrong=True, block_length=4,
                full_mask_prob=0.3, steps=4, batch_size=4, lr=1e-2, warmup=1, eval_n=0, save_every=2,
                log_every=1, threads=1)
    return DistillConfig(**{**base, **kw})


def test_trajectories_are_the_teachers_decodes_and_are_cached(teacher, tmp_path, monkeypatch) -> None:
    stats = distill(config(teacher, tmp_path, steps=1))
    task = checkpoint.make_task(config(teacher, tmp_path))
    answers, correct, meta = trajectories.load_or_decode(tmp_path, teacher, task, 12, "fast-dllm", 4)
    direct, _ = trajectories.decode_answers(teacher, task, 12, "fast-dllm", 4)
    assert torch.equal(answers, direct) and answers.shape == (12, task.gen_length)
    assert meta["n"] == 12 and stats["examples"] == 12 and correct.dtype == torch.bool

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached trajectories should have been read")

    monkeypatch.setattr(trajectories, "decode_answers", no_decoding)
    distill(config(teacher, tmp_path, steps=2, resume=True))       # reads the cache
    with pytest.raises(ConfigError, match="recipe 'fast-dllm' != 'llada'"):
        distill(config(teacher, tmp_path, steps=3, resume=True, teacher_recipe="llada"))


def test_resume_reproduces_the_uninterrupted_run(teacher, tmp_path, monkeypatch) -> None:
    full, resumed, a, b, spec = interrupted_and_resumed(
        distill, lambda out, **kw: config(teacher, out, **kw), tmp_path, monkeypatch)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert resumed["last_loss"] == pytest.approx(full["last_loss"], rel=1e-5)
    teach, _ = load_model(teacher)
    assert not torch.equal(teach.embed.weight, a.embed.weight)      # it trained, from the teacher's weights
    saved = json.loads((tmp_path / "full" / checkpoint.STATE_JSON).read_text())["config"]
    assert DistillConfig.from_dict(saved) == config(teacher, tmp_path / "full")


def test_cli_runs_writes_a_card_and_exports(teacher, tmp_path, capsys) -> None:
    from unmask.train.distill_command import main

    out, dest = tmp_path / "run", tmp_path / "shipped"
    args = ["--teacher", teacher, "--task", "copy", "--train-size", "8", "--out", str(out), "--keep-wrong",
            "--block-length", "4", "--steps", "2", "--batch-size", "4", "--eval-n", "4", "--eval-block-length", "4",
            "--threads", "1",
            "--export", str(dest)]
    assert main(args) == 0
    card = (dest / "README.md").read_text()
    assert f"unmask distill --teacher {teacher} --task copy" in card and "certainty forcing" in card and "| one-shot |" in card
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                      "tokenizer.json", "tokenizer_config.json"]
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--teacher", "no-such-model"], "not a directory, a bundled model"),
    (["--teacher", "tiny-arith-bd"], "bidirectional LLaDAModelLM"),
    (["--mask-ratio", "1.0"], "mask_ratio"),
    (["--teacher-recipe", "one-shot"], "teacher_recipe"),
    (["--full-mask-prob", "2"], "full_mask_prob"),
    (["--resume", "--overwrite"], "pass one of them"),
])
def test_cli_errors_name_the_problem(flags, message, tmp_path, capsys) -> None:
    from unmask.cli import main

    assert main(["distill", "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unmask distill: error:") and message in err and "Traceback" not in err
