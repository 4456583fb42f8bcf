"""unmask: fast inference for diffusion language models."""
from typing import Any

from unmask.config import DecodeConfig

__version__ = "0.1.0"
__all__ = ["LLM", "Completion", "DecodeConfig", "__version__"]


def __getattr__(name: str) -> Any:
    """LLM and Completion import torch: loaded on first use, so `unmask --help` and Ctrl-C stay quick."""
    if name == "LLM":
        from unmask.engine.llm import LLM
        return LLM
    if name == "Completion":
        from unmask.engine.api import Completion
        return Completion
    raise AttributeError(f"module 'unmask' has no attribute {name!r}")
