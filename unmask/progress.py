"""Progress bars for long work (bench, search, lm-eval): tqdm on a terminal, silent elsewhere.

A bar is drawn only when stderr is a terminal, the `CI` environment variable is unset, the caller did not
ask for quiet output (`--json`, `disable=True`) and tqdm is installed; otherwise `progress` returns a bar
with the same `update` / `set_postfix_str` / `close` methods that does nothing, so logs and JSON stay clean.
"""
from __future__ import annotations

import os
import sys
from typing import Any


class SilentBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def enabled(disable: bool = False) -> bool:
    return not disable and not os.environ.get("CI") and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress(total: int, desc: str, disable: bool = False) -> Any:
    """A tqdm bar over `total` units on a terminal, else a SilentBar (module docstring)."""
    if not enabled(disable):
        return SilentBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return SilentBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
