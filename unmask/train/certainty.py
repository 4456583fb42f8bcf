"""dParallel's certainty-forcing objective (arXiv 2509.26488; METHODS.md §13) on the batches of data.py.

Masking, per sample (the answer region of G positions is cut into blocks of `block_length`):
  * a random block k is chosen; answer blocks before k stay clean, blocks after k are fully masked;
  * inside block k exactly round(ratio · block_length) positions (ratio 0.5) are masked at random, and a
    complementary copy of the sample masks exactly the other positions of block k (same clean / masked
    blocks elsewhere), so every token of the block is a target once;
  * our deviation (`full_mask_prob`, 0 = pure dParallel): with that probability a sample instead has its whole
    answer masked and no complementary copy. That is the state of one-shot decoding (one forward for a
    whole 48-token block), which the paper's samples never show the model.

Loss over all rows (both copies):

    loss = mean_{masked} CE(logits, target) + λ · mean_{masked, argmax = target} H(softmax(logits / T))

with λ = 2, T = 0.5: the entropy term sharpens only the predictions that are already right.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.models.cache_view import FullView
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import MASK_ID
from unmask.train.data import Batch


@dataclass(frozen=True)
class CertaintyMasks:
    """The rows one batch expands into: `rows[i]` is the batch row copied into row i of `masked`."""

    rows: Tensor    # (R,) long: source row in the batch
    masked: Tensor  # (R, G) bool over the answer region


def answer_masks(n_rows: int, gen_length: int, block_length: int, generator: torch.Generator,
                 ratio: float = 0.5, full_mask_prob: float = 0.0) -> CertaintyMasks:
    """dParallel masking with its complementary copies (module docstring), on the answer region only."""
    n_blocks = gen_length // block_length
    col = torch.arange(gen_length)
    first, comp, rows, masked = [], [], [], []
    for b in range(n_rows):
        full = bool(torch.rand((), generator=generator) < full_mask_prob)
        k = int(torch.randint(n_blocks, (), generator=generator))
        if full:
            rows.append(b)
            masked.append(torch.ones(gen_length, dtype=torch.bool))
            continue
        lo = k * block_length
        hi = lo + block_length if k < n_blocks - 1 else gen_length   # the last block takes any remainder
        inside = torch.zeros(gen_length, dtype=torch.bool)
        order = torch.randperm(hi - lo, generator=generator)[: round(ratio * (hi - lo))]
        inside[lo + order] = True
        later = col >= hi
        first.append((b, inside | later))
        comp.append((b, (~inside & (col >= lo) & (col < hi)) | later))
    for b, m in first + comp:
        rows.append(b)
        masked.append(m)
    return CertaintyMasks(torch.tensor(rows, dtype=torch.long), torch.stack(masked))


def certainty_loss_on(logits: Tensor, target: Tensor, masked: Tensor, entropy_weight: float = 2.0,
                      temperature: float = 0.5) -> tuple[Tensor, dict[str, float]]:
    """logits (R, G, V), target (R, G), masked (R, G) bool → (loss, its parts); formula in the module docstring."""
    hit = masked.reshape(-1)
    flat, tgt = logits.reshape(-1, logits.shape[-1])[hit], target.reshape(-1)[hit]
    ce = F.cross_entropy(flat, tgt)
    correct = flat.argmax(-1) == tgt
    if correct.any():
        logp = F.log_softmax(flat[correct] / temperature, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
    else:
        entropy = flat.new_zeros(())
    parts = {"ce": ce.item(), "entropy": entropy.item(), "correct": correct.float().mean().item()}
    return ce + entropy_weight * entropy, parts


def certainty_loss(model: DecoderLM, batch: Batch, generator: torch.Generator, block_length: int,
                   ratio: float = 0.5, full_mask_prob: float = 0.0, entropy_weight: float = 2.0,
                   temperature: float = 0.5, mask_id: int = MASK_ID) -> tuple[Tensor, dict[str, float]]:
    """One estimate of the certainty-forcing loss on `batch` (targets = the batch's answers)."""
    start, (B, L) = batch.answer_start, batch.input_ids.shape
    plan = answer_masks(B, L - start, block_length, generator, ratio, full_mask_prob)
    device = batch.input_ids.device
    rows, masked = plan.rows.to(device), plan.masked.to(device)
    ids, keys, positions = batch.input_ids[rows], batch.key_mask[rows], batch.positions[rows]
    target = ids[:, start:]
    noisy = ids.clone()
    noisy[:, start:] = torch.where(masked, torch.full_like(target, mask_id), target)
    cols = torch.arange(start, L, device=device).expand(len(rows), -1)
    logits = model(noisy, positions, FullView(keys), logits_at=cols)          # (R, G, V) float32
    return certainty_loss_on(logits, target, masked, entropy_weight, temperature)
