"""Train a run twice: straight through, and killed right after its step-2 checkpoint then resumed."""
from __future__ import annotations

from unmask.models.loader import load_model
from unmask.train import checkpoint


def interrupted_and_resumed(run, make_config, tmp_path, monkeypatch):
    """(full stats, resumed stats, full model, resumed model, spec): `run(make_config(out, **kw))` trains to `out`."""
    full = run(make_config(tmp_path / "full"))
    real_save = checkpoint.save

    def save_then_crash(cfg, run_dir, model, opt, step, wall_s):  # dies right after the step-2 checkpoint
        real_save(cfg, run_dir, model, opt, step, wall_s)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_crash)
    try:
        run(make_config(tmp_path / "split"))
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted at its step-2 checkpoint")
    monkeypatch.undo()
    resumed = run(make_config(tmp_path / "split", resume=True))
    a, spec = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "split")
    return full, resumed, a, b, spec
