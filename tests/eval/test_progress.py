"""Progress bars: drawn on a terminal only, silent under --json (disable), CI, or a pipe."""
from __future__ import annotations

import io
import sys

from unmask.progress import SilentBar, progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_and_silent_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty())
    bar = progress(3, "work")
    assert not isinstance(bar, SilentBar)
    bar.update(3)
    bar.close()
    assert "work" in sys.stderr.getvalue()
    assert isinstance(progress(3, "work", disable=True), SilentBar)   # --json
    monkeypatch.setenv("CI", "true")
    assert isinstance(progress(3, "work"), SilentBar)                 # CI
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(progress(3, "work"), SilentBar)                 # a pipe or a log file
