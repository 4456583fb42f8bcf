"""The autoregressive (next-token) objective: a causal model on the same SFT batches, tokenizer and task.

The model attends causally (a key at position q is visible to a query at position p iff q ≤ p; the
`block_causal:1` pattern, built from each row's own positions so left padding is harmless) and the hidden
state at position i predicts token i + 1. Supervised targets: every answer token and the answer's first
EOS; the prompt is context only and the EOS padding after the first EOS is never a target (an AR decode
stops there). The loss is the mean cross-entropy over the supervised targets of the batch:

    loss = Σ_b Σ_{i ∈ targets(b)} CE(logits_{b, i-1}, x_{b, i}) / Σ_b |targets(b)|

The checkpoint's config.json says `"is_causal": true`; the loader then builds the same LLaDA-layout
decoder with a `DiffusionSpec(autoregressive=True)`, which the engine uses only as a verifier or for plain
AR decoding (engine/autoregressive.py).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.models.block_mask import pattern_mask
from unmask.models.cache_view import MaskView
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import EOS_ID
from unmask.train.data import Batch

CAUSAL = "block_causal:1"


def ar_targets(batch: Batch) -> Tensor:
    """(B, G) bool over the answer columns: the answer tokens and the first EOS (nothing after it)."""
    answer = batch.input_ids[:, batch.answer_start:]                         # (B, G)
    eos_before = (answer == EOS_ID).long().cumsum(-1) - (answer == EOS_ID).long()  # EOS strictly before i
    return eos_before == 0


def ar_loss(model: DecoderLM, batch: Batch) -> Tensor:
    """Mean next-token cross-entropy on the answer targets of `batch` (module docstring); one causal forward."""
    B, L = batch.input_ids.shape
    start = batch.answer_start
    mask = pattern_mask(batch.key_mask, batch.positions, CAUSAL)           # (B, 1, L, L)
    cols = torch.arange(start - 1, L - 1, device=batch.input_ids.device).expand(B, -1)  # (B, G) predictors
    logits = model(batch.input_ids, batch.positions, MaskView(mask), logits_at=cols)    # (B, G, V)
    target, hit = batch.input_ids[:, start:], ar_targets(batch)
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, G)
    return (ce * hit).sum() / hit.sum()
