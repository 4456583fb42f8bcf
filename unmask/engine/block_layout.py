"""Where a block-causal model's blocks fall on each row, and the decode settings such a model accepts.

A block-causal model (SDAR, Fast-dLLM v2, LLaDA2, BD3-LM; `DiffusionSpec.attention = "block_causal:<n>"`)
attends in blocks of n counted from each row's position 0. The decode schedule's blocks (`block_length`, b)
must tile those blocks: b = n, or a divisor of n, which decodes each model block sub-block by sub-block
(Fast-dLLM v2's `small_block_size`) while the forward and the exact cache still work on the whole model block.
Decode blocks count from each row's position 0 too: a row whose prompt ends inside one starts with its
remainder (`DecodeState.block_offset` = prompt length mod b). A model with full attention takes any blocks.
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache import CACHES
from unmask.cache.kv_store import block_size
from unmask.config import DecodeConfig
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec


def model_block(spec: DiffusionSpec) -> int | None:
    """n of a block-causal spec, None for full attention (ConfigError for an unknown pattern)."""
    return block_size(spec.attention)


def check_for_model(config: DecodeConfig, spec: DiffusionSpec) -> None:
    """ConfigError when `config` cannot decode this model: decode blocks that do not tile the model's blocks,
    or a cache that cannot serve its attention pattern."""
    CACHES.get(config.cache).check_spec(spec)
    n = model_block(spec)
    if n is not None and n % config.window_length != 0:
        how = "schedule 'full' decodes one block of gen_length" if config.schedule == "full" else \
            f"block_length is {config.window_length}"
        raise ConfigError(f"this model attends block-causally in blocks of {n} tokens, and its decode blocks must "
                          f"be those blocks or sub-blocks that tile them: set block_length={n} (or a divisor of "
                          f"{n}, to decode sub-block by sub-block) ({how})")


def block_offsets(prompt_lengths: list[int], spec: DiffusionSpec, window_length: int, device: torch.device
                  ) -> Tensor:
    """(B,) long: each row's generated index 0 within its first decode block (0 under full attention). Decode
    blocks of `window_length` tile the model's blocks, so every decode block lies inside one model block."""
    n = model_block(spec)
    return torch.tensor([length % window_length if n else 0 for length in prompt_lengths], dtype=torch.long,
                        device=device)
