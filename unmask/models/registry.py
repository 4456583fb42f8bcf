"""config.json `architectures[0]` (or `model_type`) → the module that reads that architecture."""
from __future__ import annotations

from types import ModuleType
from typing import Any

from unmask.errors import CheckpointError
from unmask.models import dream, llada

ARCH_MODULES: tuple[ModuleType, ...] = (llada, dream)


def arch_module(cfg: dict[str, Any]) -> ModuleType:
    """The architecture module for a parsed config.json; CheckpointError when none matches."""
    archs = cfg.get("architectures") or []
    for module in ARCH_MODULES:
        if (archs and archs[0] in module.ARCHITECTURES) or (not archs and cfg.get("model_type") in module.MODEL_TYPES):
            return module
    known = [a for m in ARCH_MODULES for a in m.ARCHITECTURES]
    raise CheckpointError(f"unsupported architecture {archs[:1] or cfg.get('model_type')!r}; "
                          f"unmask knows {', '.join(known)}")
