"""Attention patterns as boolean masks built from each row's own token positions (block diffusion, BD3-LM).

`attention` strings are those of `DiffusionSpec.attention`:
* "full": every query attends every real (non-padding) key of its row;
* "block_causal:<n>": a query at position p attends a key at position q iff q // n <= p // n. Blocks count
  from each row's position 0 (its first real token), whatever the left padding, so a row's model blocks are
  the same alone and in a ragged batch (SDAR, Fast-dLLM v2, LLaDA2, arXiv 2503.09573).
"""
from __future__ import annotations

import torch
from torch import Tensor


def block_size(attention: str) -> int | None:
    """None for full attention, n for "block_causal:<n>"; ValueError for anything else."""
    if attention == "full":
        return None
    kind, _, n = attention.partition(":")
    if kind != "block_causal" or not n.isdigit() or int(n) <= 0:
        raise ValueError(f"unknown attention pattern {attention!r}; expected 'full' or 'block_causal:<n>'")
    return int(n)


def block_causal(query_positions: Tensor, key_positions: Tensor, n: int) -> Tensor:
    """(B, Q, K) bool: key block ≤ query block. query_positions (B, Q), key_positions (B, K) long."""
    return (key_positions // n)[:, None, :] <= (query_positions // n)[:, :, None]


def pattern_mask(key_mask: Tensor, positions: Tensor, attention: str, queries: Tensor | None = None) -> Tensor:
    """Mask (B, 1, Q or 1, L) bool, True = attend, for queries at canvas indices `queries` (B, Q) (None: all L).

    key_mask: (B, L) bool, False on left padding; positions: (B, L) long, each token's position.
    """
    n = block_size(attention)
    keys = key_mask[:, None, None, :]                                       # (B, 1, 1, L)
    if n is None:
        return keys
    q_pos = positions if queries is None else positions.gather(1, queries)  # (B, Q)
    return keys & block_causal(q_pos, positions, n)[:, None]


def bd3_training_mask(key_mask: Tensor, positions: Tensor, n: int) -> Tensor:
    """BD3-LM's vectorised training mask over [noisy x_t ⊕ clean x_0], (B, 1, 2L, 2L) bool.

    A noisy token attends the noisy tokens of its own block and the clean tokens of earlier blocks; a clean
    token attends clean tokens block-causally; no clean token sees a noisy one. key_mask, positions: (B, L).
    """
    block = positions // n                                                  # (B, L)
    same = block[:, :, None] == block[:, None, :]                           # (B, L, L) noisy → noisy
    earlier = block[:, None, :] < block[:, :, None]                         # (B, L, L) noisy → clean
    causal = block[:, None, :] <= block[:, :, None]                         # (B, L, L) clean → clean
    top = torch.cat([same, earlier], -1)
    bottom = torch.cat([torch.zeros_like(same), causal], -1)
    keys = key_mask.repeat(1, 2)[:, None, :]                                # (B, 1, 2L)
    return (torch.cat([top, bottom], 1) & keys)[:, None]
