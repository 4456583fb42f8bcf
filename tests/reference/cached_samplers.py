"""Re-implementations of Fast-dLLM's KV-cached LLaDA samplers: the oracles for unmask's PrefixCache / DualCache.

Sources read (written from a reading, not copied): ``generate_with_prefix_cache`` and ``generate_with_dual_cache``
in ``NVlabs/Fast-dLLM`` ``llada/generate.py`` (stored version f6b35ec3f1b16e1b3d3357938046559ae2d350fa, with the
``factor`` rule; compared against the snapshot 24cc59e75f20a6384bae8c905965bb090b96388e, 2025-06-27) and the
cache arguments (``use_cache``, ``past_key_values``, ``replace_position``) of ``LLaDABlock.attention`` /
``RotaryEmbedding`` in ``llada/model/modeling_llada.py`` at 24cc59e.

``model_fn(x, kv=None, start=0)`` is ``checkpoints.reference_llada_forward``'s forward: ``kv`` holds per-layer
PRE-RoPE K/V as ``past_key_values`` does, keys are rotated at their canvas positions on every call and queries
at ``[start, start + T)`` (upstream: ``key_len - query_len`` for the prefix cache, ``replace_position``'s end
minus ``query_len`` for the dual cache).

Per block [s, e) (``nfe`` counts model calls):
1. Full forward over the whole sequence with ``use_cache=True``: its logits decode step 0 of the block (commits
   restricted to masks in [s, e)) and its K/V of ALL positions become the cache (computed before that commit).
2. Prefix: the cache is cut to [0, s); each further step feeds ``x[:, s:]`` (block + whole suffix, recomputed)
   with ``cat(past, fresh)`` keys. Dual: the cache keeps every position; each step feeds only ``x[:, s:e]`` and
   ``replace_position`` writes the block's fresh K/V in place, so the suffix K/V stay those of step 1.
3. The loop is ``while True`` that breaks FIRST when the block has no mask left (over the whole batch), so a block
   the refresh step already filled costs 1 NFE. (The 2025-06 snapshot tested after the forward instead and spent
   one extra forward that commits nothing; a later v1 revision replaced the loop by a fixed
   ``range(1, steps_per_block)``, METHODS.md §3.4. Neither is reproduced.)
Selection: ``samplers.fastdllm_transfer_index`` (threshold: every mask with conf ≥ τ plus the argmax; ``threshold
= None``: the LLaDA quota of this block's step i) or ``samplers.fastdllm_transfer_index_dynamic`` (``factor``),
float64 confidence, as the cache-free ``samplers.fastdllm_generate``.

Batches: rows run in lockstep (a row whose block is full waits, committing nothing); prompts must have equal
lengths (upstream passes no attention mask). Upstream's dual cache builds ``replace_position`` as a (B, L) mask and
indexes with ``nonzero()[1]``, which mixes rows for B > 1 (shape error, PR #17); here every row writes [s, e).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from reference import samplers

__all__ = ["generate_with_prefix_cache", "generate_with_dual_cache"]


@torch.no_grad()
def _generate_cached(model_fn: Callable, prompt: torch.Tensor, steps: int, gen_length: int, block_length: int,
                     dual: bool, *, mask_id: int, threshold: Optional[float] = None, factor: Optional[float] = None,
                     temperature: float = 0.0, remasking: str = "low_confidence",
                     generator: Optional[torch.Generator] = None, history: Optional[list] = None,
                     cfg_scale: float = 0.0) -> tuple[torch.Tensor, int]:
    batch, prompt_len = prompt.shape
    model_fn = _guided(model_fn, prompt_len, mask_id, cfg_scale) if cfg_scale > 0 else model_fn
    x = torch.full((batch, prompt_len + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_len] = prompt.clone()
    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    assert steps % num_blocks == 0
    steps_per_block = steps // num_blocks

    def commit(logits, region, mask_index, quota, step):
        """Fill the chosen masks of `region` (x or a view of it) in place."""
        if factor is None:
            x0, transfer = samplers.fastdllm_transfer_index(
                logits, temperature, remasking, mask_index, region,
                quota[:, step] if threshold is None else None, threshold, generator)
        else:
            x0, transfer = samplers.fastdllm_transfer_index_dynamic(
                logits, temperature, remasking, mask_index, region, factor, generator)
        region[transfer] = x0[transfer]
        if history is not None:
            history.append(x.clone())

    nfe = 0
    for block in range(num_blocks):
        start = prompt_len + block * block_length
        end = start + block_length
        quota = samplers.fastdllm_num_transfer_tokens(x[:, start:end] == mask_id, steps_per_block)

        kv: list = []                                   # use_cache=True: every layer's K/V of every position
        logits = model_fn(x, kv)
        mask_index = x == mask_id
        mask_index[:, end:] = False
        commit(logits, x, mask_index, quota, 0)
        nfe += 1
        if not dual:                                    # prefix cache: keep [0, s) only
            kv[:] = [(k[:, :, :start], v[:, :, :start]) for k, v in kv]

        step = 1
        while (x[:, start:end] == mask_id).any():
            nfe += 1
            region = x[:, start:end] if dual else x[:, start:]   # a view: commits write through to x
            logits = model_fn(region, kv, start)
            mask_index = region == mask_id
            mask_index[:, block_length:] = False
            commit(logits, region, mask_index, quota, step)
            step += 1
    return x, nfe


def _guided(model_fn: Callable, prompt_len: int, mask_id: int, cfg_scale: float) -> Callable:
    """Classifier-free guidance on every forward of the cached loop (not in Fast-dLLM; our composition of
    LLaDA's ``generate.py`` CFG with it): the batch is [x; x with the prompt masked], one forward, the cache
    holding K/V for all 2B rows (the unconditional rows' own), logits ``un + (s + 1)(cond - un)``."""
    def forward(region, kv=None, start=0):
        un = region.clone()
        un[:, :max(0, prompt_len - start)] = mask_id
        cond, uncond = model_fn(torch.cat([region, un]), kv, start).chunk(2)
        return uncond + (cfg_scale + 1) * (cond - uncond)
    return forward


def generate_with_prefix_cache(model_fn: Callable, prompt: torch.Tensor, steps: int, gen_length: int,
                               block_length: int, **kw) -> tuple[torch.Tensor, int]:
    """Fast-dLLM ``generate_with_prefix_cache`` → ``(x, nfe)``; keywords as ``_generate_cached``."""
    return _generate_cached(model_fn, prompt, steps, gen_length, block_length, False, **kw)


def generate_with_dual_cache(model_fn: Callable, prompt: torch.Tensor, steps: int, gen_length: int,
                             block_length: int, **kw) -> tuple[torch.Tensor, int]:
    """Fast-dLLM ``generate_with_dual_cache`` → ``(x, nfe)``; keywords as ``_generate_cached``."""
    return _generate_cached(model_fn, prompt, steps, gen_length, block_length, True, **kw)
