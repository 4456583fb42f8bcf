"""Where a block-causal model's blocks fall on each row, and the decode settings such a model accepts.

A block-causal model (SDAR, Fast-dLLM v2, LLaDA2, BD3-LM; `DiffusionSpec.attention = "block_causal:<n>"`)
attends in blocks of n counted from each row's position 0. The decode schedule's blocks must be those same
blocks: `block_length` must equal n, and a row whose prompt ends inside a block starts with that block's
remainder (`DecodeState.block_offset` = prompt length mod n). A model with full attention takes any blocks.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache import CACHES
from unmask.config import DecodeConfig
from unmask.errors import ConfigError
from unmask.models.block_mask import block_size
from unmask.models.spec import DiffusionSpec


def model_block(spec: DiffusionSpec) -> int | None:
    """n of a block-causal spec, None for full attention."""
    try:
        return block_size(spec.attention)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_for_model(config: DecodeConfig, spec: DiffusionSpec) -> None:
    """ConfigError when `config` cannot decode this model: decode blocks that are not the model's blocks, or a
    cache that cannot serve its attention pattern."""
    CACHES.get(config.cache).check_spec(spec)
    n = model_block(spec)
    if n is not None and config.window_length != n:
        how = "schedule 'full' decodes one block of gen_length" if config.schedule == "full" else \
            f"block_length is {config.window_length}"
        raise ConfigError(f"this model attends block-causally in blocks of {n} tokens, and its decode blocks must "
                          f"be the same: set block_length={n} and a gen_length that is a multiple of it ({how})")


def block_offsets(prompt_lengths: list[int], spec: DiffusionSpec, device: torch.device) -> Tensor:
    """(B,) long: each row's generated index 0 within its first model block (0 under full attention)."""
    n = model_block(spec)
    return torch.tensor([length % n if n else 0 for length in prompt_lengths], dtype=torch.long, device=device)
