"""The BD3-LM block-diffusion objective (arXiv 2503.09573, §15 of METHODS.md), on the SFT batches of data.py.

The answer is cut into model blocks of n positions, counted from each row's position 0 (a prompt's tail and
the answer's first tokens share a block, as at inference). Every block draws its own noise level
t ~ U(0, 1), p = (1 - eps)·t + eps, and each of its answer tokens is masked with probability p; prompt tokens
are never masked. The model sees the noisy sequence and the clean one side by side, [x_t ⊕ x_0] with the
same positions, under `bd3_training_mask`: a noisy block attends itself and the CLEAN earlier blocks, so
one forward trains every block on the context it will have when it is decoded (earlier blocks final). The
loss is LLaDA's SFT normalisation with the per-block p:

    loss = 1/B · Σ_b 1/len_b · Σ_{i masked in b} CE(logits_bi, x_bi) / p_{b, block(i)}
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.models.block_mask import bd3_training_mask
from unmask.models.cache_view import MaskView
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import MASK_ID
from unmask.train.data import Batch


def block_noise(batch: Batch, block_size: int, generator: torch.Generator, mask_id: int = MASK_ID,
                eps: float = 1e-3) -> tuple[Tensor, Tensor, Tensor]:
    """Mask answer tokens with a noise level per (row, block): (noisy ids (B, L), masked (B, L), p (B, L))."""
    B, L = batch.input_ids.shape
    positions = batch.positions.cpu()
    block = positions // block_size                                          # (B, L)
    n_blocks = int(block.max()) + 1
    t = torch.rand(B, n_blocks, generator=generator)                         # (B, n_blocks)
    p = ((1 - eps) * t + eps).gather(1, block)                               # (B, L)
    masked = (torch.rand(B, L, generator=generator) < p) & batch.answer_mask.cpu()
    device = batch.input_ids.device
    masked, p = masked.to(device), p.to(device)
    noisy = torch.where(masked, torch.full_like(batch.input_ids, mask_id), batch.input_ids)
    return noisy, masked, p


def bd3_loss_on(model: DecoderLM, batch: Batch, block_size: int, noisy: Tensor, masked: Tensor, p: Tensor) -> Tensor:
    """The BD3 loss for a given noising (module docstring); one forward over [x_t ⊕ x_0]."""
    B, L = noisy.shape
    start = batch.answer_start
    ids = torch.cat([noisy, batch.input_ids], 1)                             # (B, 2L)
    positions = batch.positions.repeat(1, 2)                                 # (B, 2L)
    mask = bd3_training_mask(batch.key_mask, batch.positions, block_size)   # (B, 1, 2L, 2L)
    cols = torch.arange(start, L, device=noisy.device).expand(B, -1)        # (B, G) noisy answer rows
    logits = model(ids, positions, MaskView(mask), logits_at=cols)          # (B, G, V) float32
    target, hit = batch.input_ids[:, start:], masked[:, start:]
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, G)
    weight = hit.float() / (p[:, start:] * batch.answer_lengths[:, None].float())
    return (ce * weight).sum() / B


def bd3_loss(model: DecoderLM, batch: Batch, block_size: int, generator: torch.Generator,
             mask_id: int = MASK_ID, eps: float = 1e-3) -> Tensor:
    """One Monte-Carlo estimate of the BD3-LM objective on `batch`."""
    return bd3_loss_on(model, batch, block_size, *block_noise(batch, block_size, generator, mask_id, eps))
