"""The model card records how a run was made, including the run it was initialised from."""
from __future__ import annotations

from unmask.train.card import NOTES, write_card
from unmask.train.mdlm import train
from test_mdlm import small_config  # pytest puts this folder on sys.path


def test_card_lists_the_initial_runs_commands_and_notes(tmp_path) -> None:
    first = small_config(str(tmp_path / "first"), steps=2)
    train(first)
    (tmp_path / "first" / "commands.txt").write_text("unmask train --out first --steps 2\n")
    second = small_config(str(tmp_path / "second"), steps=2, init_from=str(tmp_path / "first"), dtype="bf16")
    stats = train(second)
    (tmp_path / "second" / NOTES).write_text("Stage 1 used an older task format.")
    card = write_card(second, stats, "unmask train --out second --init-from first").read_text()
    assert "trained further by `unmask train`" in card
    assert "## Initialisation" in card and "(2 steps," in card and "unmask train --out first --steps 2" in card
    assert "dtype bf16 autocast" in card
    assert card.rstrip().endswith("Stage 1 used an older task format.")
    fresh = write_card(first, train(small_config(str(tmp_path / "first"), steps=2, resume=True)), "x").read_text()
    assert "from scratch" in fresh and "Initialisation" not in fresh and "dtype fp32" in fresh
