"""A λ-conditioned model with one step's λ bound: called like any model, so the step's forwards need no change.

The step draws λ (decoding/latent.py) and binds it here; every forward of that step (the plain one, guidance's
copy rows, WINO's shadow queries, an AR verifier's draft) then feeds the same λ to each row.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class LatentBound:
    """`model` (a λ-conditioned DecoderLM, or its compiled forward) with `latent` (B,) bound to its rows."""

    def __init__(self, model: nn.Module, latent: Tensor) -> None:
        self.model, self.latent = model, latent

    def __call__(self, ids: Tensor, positions: Tensor, view: Any = None, logits_at: Tensor | None = None) -> Tensor:
        lam = self.latent
        if ids.shape[0] != lam.shape[0]:   # guidance: rows [main; copies], each copy with its row's λ
            lam = lam.repeat(ids.shape[0] // lam.shape[0])
        return self.model(ids, positions, view, logits_at, latent=lam)

    def __getattr__(self, name: str) -> Any:   # layers, cfg, …: the model's
        return getattr(self.model, name)
