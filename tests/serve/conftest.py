"""Fixtures for the serve tests: tiny-arith and one live server per module (helpers in live_server.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from live_server import LiveServer  # noqa: E402

from unmask import LLM  # noqa: E402
from unmask.serve.app import ServeConfig  # noqa: E402


@pytest.fixture(scope="session")
def tiny_arith() -> LLM:
    return LLM("tiny-arith", device="cpu")


@pytest.fixture(scope="module")
def live(tiny_arith):
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_tokens=64, max_prompt_tokens=100)) as server:
        yield server
