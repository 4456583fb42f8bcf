"""Shared fixtures: tiny random checkpoints in the published LLaDA / Dream layouts, markers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/checkpoints.py, tiny_models.py, reference

from tiny_models import write_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def llada_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("llada"), "llada")


@pytest.fixture(scope="session")
def dream_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("dream"), "dream")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow (or set UNMASK_RUN_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or os.environ.get("UNMASK_RUN_SLOW") == "1"
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow"))
