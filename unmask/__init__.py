"""unmask: fast inference for diffusion language models."""
from unmask.config import DecodeConfig
from unmask.engine.api import Completion
from unmask.engine.llm import LLM

__version__ = "0.1.0"
__all__ = ["LLM", "Completion", "DecodeConfig", "__version__"]
