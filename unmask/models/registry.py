"""config.json `architectures[0]` (or `model_type`) → the module that reads that architecture."""
from __future__ import annotations

from types import ModuleType
from typing import Any

from unmask.errors import CheckpointError
from unmask.models import block_diffusion, diffusion_gemma, dream, llada, llada2, llada_moe

ARCH_MODULES: tuple[ModuleType, ...] = (llada, dream, block_diffusion, llada2, llada_moe, diffusion_gemma)


def architectures(cfg: dict[str, Any]) -> list[str]:
    """config.json `architectures` as a list of names; a single string is accepted as a one-item list."""
    archs = cfg.get("architectures")
    if archs is None:
        return []
    if isinstance(archs, str):
        return [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise CheckpointError(f"config.json architectures must be a list of class names like [\"LLaDAModelLM\"], "
                              f"got {str(archs)[:80]}")
    return archs


def arch_module(cfg: dict[str, Any]) -> ModuleType:
    """The architecture module for a parsed config.json; CheckpointError when none matches."""
    archs = architectures(cfg)
    model_type = cfg.get("model_type")
    for module in ARCH_MODULES:
        if (archs and archs[0] in module.ARCHITECTURES) or (
                not archs and isinstance(model_type, str) and model_type in module.MODEL_TYPES):
            return module
    known = [a for m in ARCH_MODULES for a in m.ARCHITECTURES]
    got = archs[0] if archs else model_type
    raise CheckpointError(f"unsupported architecture {str(got)[:80]!r} in config.json; unmask knows {', '.join(known)}")
