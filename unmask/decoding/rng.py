"""Per-row random draws: row b comes from generators[b], so a row's numbers never depend on its neighbours."""
from __future__ import annotations

import torch
from torch import Tensor


def row_uniforms(generators: list[torch.Generator] | None, batch: int, shape: tuple[int, ...],
                 device: torch.device | str, dtype: torch.dtype = torch.float64) -> Tensor:
    """(batch, *shape) uniforms in [0, 1); with no generators, from the global generator."""
    if generators is None:
        return torch.rand(batch, *shape, dtype=dtype, device=device)
    return torch.stack([torch.rand(shape, generator=g, device=g.device, dtype=dtype)
                        for g in generators[:batch]]).to(device)
