"""`unmask distill --method di4c`: exact resume, the command line, its card and export, and its errors (a tiny teacher)."""
from __future__ import annotations

import json

import pytest
import torch

from unmask.models.loader import load_model
from unmask.train import checkpoint
from unmask.train.distill import DistillConfig, distill
from tests.train.resume_check import interrupted_and_resumed
from tests.train.test_distill import teacher  # noqa: F401  (the tiny teacher fixture)


def config(teacher: str, out, **kw: object) -> DistillConfig:
    base = dict(method="di4c", teacher=teacher, task="copy", train_size=12, out=str(out), full_mask_prob=0.5,
                latents=3, latent_features=4, data_weight=0.5, steps=4, batch_size=4, lr=1e-2, warmup=1, eval_n=0,
                save_every=2, log_every=1, threads=1)
    return DistillConfig(**{**base, **kw})


def test_resume_reproduces_the_uninterrupted_run(teacher, tmp_path, monkeypatch) -> None:
    full, resumed, a, b, spec = interrupted_and_resumed(
        distill, lambda out, **kw: config(teacher, out, **kw), tmp_path, monkeypatch)
    assert spec.latent_conditioned and a.latent is not None
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert resumed["step"] == 4 and resumed["last_loss"] == pytest.approx(full["last_loss"], rel=1e-5)
    assert resumed["consistency"] == pytest.approx(full["consistency"], rel=1e-5)
    assert a.latent.proj.weight.abs().sum() > 0                      # the λ input trained
    config_json = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config_json["latent_conditioning"] == {"features": 4}
    log = [json.loads(line) for line in (tmp_path / "split" / checkpoint.LOG).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all("distil" in r and "data" in r for r in log)


def test_a_dparallel_run_does_not_resume_as_di4c(teacher, tmp_path) -> None:
    from unmask.errors import ConfigError

    distill(config(teacher, tmp_path, method="dparallel", keep_wrong=True, block_length=4, steps=2))
    with pytest.raises(ConfigError, match="conditioning differ"):
        distill(config(teacher, tmp_path, steps=3, resume=True))


def test_cli_trains_evaluates_writes_the_card_and_exports(teacher, tmp_path, capsys) -> None:
    from unmask.train.distill_command import main

    out, dest = tmp_path / "run", tmp_path / "shipped"
    args = ["--method", "di4c", "--teacher", teacher, "--task", "copy", "--train-size", "8", "--out", str(out),
            "--latents", "2", "--steps", "2", "--batch-size", "4", "--eval-n", "4", "--eval-every", "1",
            "--eval-block-length", "4", "--log-every", "1", "--threads", "1", "--export", str(dest)]
    assert main(args) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {"one-shot/accuracy", "steps-2/accuracy", "steps-4/accuracy"} <= set(stats["eval"])
    card = (dest / "README.md").read_text()
    assert f"unmask distill --method di4c --teacher {teacher} --task copy" in card and "Di4C" in card
    assert "## Training curve" in card and "| steps-2 |" in card and '"latent_conditioning"' in card
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                      "tokenizer.json", "tokenizer_config.json"]
    assert json.loads((dest / "config.json").read_text())["latent_conditioning"] == {"features": 8}
    assert load_model(dest)[1].latent_conditioned


@pytest.mark.parametrize("flags, message", [
    (["--method", "dpar"], "method must be one of dparallel, di4c"),
    (["--method", "di4c", "--teacher-order", "left"], "teacher_order"),
    (["--method", "di4c", "--teacher-fraction", "1"], "teacher_fraction"),
    (["--method", "di4c", "--latents", "0"], "latents"),
    (["--method", "di4c", "--data-weight", "-1"], "data_weight"),
])
def test_cli_errors_name_the_problem(flags, message, tmp_path, capsys) -> None:
    from unmask.cli import main

    assert main(["distill", "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unmask distill: error:") and message in err and "Traceback" not in err
