"""A causal next-token model (`DiffusionSpec.autoregressive`) in the engine: chunked reads over a per-row KV
cache (engine/ar_cache.py), and plain greedy AR decoding, the baseline SpecDiff's speed-up is counted against.

`ARModel.read(kv, ids, positions, valid)` is one forward of the AR model: row b reads its chunk ids[b] (padding
where `valid` is False) at `positions`, its K/V go into the row's slots, and logits[b, j] predict the token
after chunk column j (the position after positions[b, j]).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from unmask.engine.ar_cache import SlotKV, empty_kv
from unmask.errors import ConfigError
from unmask.models.loader import load_model
from unmask.models.resolve import resolve_model
from unmask.models.spec import DiffusionSpec
from unmask.models.tokenizer import TextTokenizer


@dataclass
class ARModel:
    model: nn.Module
    spec: DiffusionSpec
    device: torch.device
    name: str = "verifier"

    @classmethod
    def load(cls, name: str | Path, device: torch.device, dtype: torch.dtype) -> tuple["ARModel", TextTokenizer]:
        """Load an autoregressive checkpoint (a config.json with `"is_causal": true`) and its tokenizer."""
        path = resolve_model(name)
        model, spec = load_model(path, device, dtype)
        if not spec.autoregressive:
            raise ConfigError(f"{name}: not an autoregressive model (its config.json has no \"is_causal\": true); "
                              f"a verifier must be a causal next-token model such as tiny-arith-ar")
        return cls(model, spec, device, str(name)), TextTokenizer(path)

    @property
    def vocab_size(self) -> int:
        return self.model.cfg.vocab_size

    def empty_kv(self, batch: int, length: int) -> Tensor:
        """Slots for `length` positions per row: (B, n_layers, 2, H_kv, length + 1, D)."""
        cfg = self.model.cfg
        dtype = next(self.model.parameters()).dtype
        return empty_kv(batch, cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, length, self.device, dtype)

    def read(self, kv: Tensor, ids: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        """One forward over the chunks ids (B, Q) at positions (B, Q); logits (B, Q, V) float32."""
        limit = min(kv.shape[4] - 1, self.spec.context_len)
        if bool((valid & (positions >= limit)).any()):
            raise ConfigError(f"the AR model reads at most {limit} positions per row (its context or cache); "
                              f"a row reached position {int(positions[valid].max())}")
        positions = torch.where(valid, positions, 0)   # padding columns: any position the rotary tables hold
        return self.model(ids, positions, SlotKV(kv, positions, valid))


def greedy(ar: ARModel, prompts: list[list[int]], max_new: int) -> list[tuple[list[int], int]]:
    """Plain greedy AR decoding: per prompt (generated ids up to and including the first EOS, AR forwards).

    The first forward reads the prompt (left-padded to the longest) and proposes token 1; each later one reads
    the last token. A row counts a forward while it is unfinished (no EOS yet, fewer than `max_new` tokens)."""
    B, P, device = len(prompts), max(len(p) for p in prompts), ar.device
    kv = ar.empty_kv(B, P + max_new)
    ids = torch.tensor([[0] * (P - len(p)) + list(p) for p in prompts], device=device)
    valid = torch.tensor([[False] * (P - len(p)) + [True] * len(p) for p in prompts], device=device)
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    eos = torch.tensor(ar.spec.eos_ids, device=device)
    out = torch.zeros(B, max_new, dtype=torch.long, device=device)
    forwards = torch.zeros(B, dtype=torch.long, device=device)
    active = torch.ones(B, dtype=torch.bool, device=device)
    with torch.inference_mode():
        for i in range(max_new):
            logits = ar.read(kv, ids, positions, valid & active[:, None])
            token = logits[:, -1].argmax(-1)                                           # (B,)
            out[:, i] = token
            forwards += active.long()
            active = active & ~torch.isin(token, eos)
            if not bool(active.any()):
                break
            ids, positions, valid = token[:, None], positions[:, -1:] + 1, torch.ones(B, 1, dtype=torch.bool,
                                                                                      device=device)
    rows, counts = out.tolist(), forwards.tolist()
    return [(row[:n], n) for row, n in zip(rows, counts)]
