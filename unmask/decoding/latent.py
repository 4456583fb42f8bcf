"""Di4C's latent: a λ-conditioned model (models/latent.py) reads one λ ~ U(0, 1) per row at every step.

The decoding side, not the model, draws it: each row's λ comes from the row's own generator (decoding/rng.py),
one draw per row per step, before the step's other draws. A seeded request therefore gets the same λ sequence,
and the same tokens, alone or inside any batch. λ selects one component of the student's mixture: for fixed λ
the step is a product over positions, and averaging over λ is what carries the correlation between them.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.decoding.rng import row_uniforms


class LatentDraw:
    """Draws the step's λ: (B,) float32 in [0, 1), row b from generators[b]."""

    def draw(self, generators: list[torch.Generator], batch: int, device: torch.device | str) -> Tensor:
        return row_uniforms(generators, batch, (), device, torch.float32)
