"""Re-implementations of the official diffusion-LM samplers: the oracles unmask's decoding is checked against.

Each function takes ``model_fn(x: LongTensor[B, L]) -> Tensor[B, L, V]`` that returns the model's own raw logits
(UNSHIFTED for every model; `dream_generate` applies Dream's shift itself) and returns the full sequence
``(B, P + G)``. The code is written from a reading of the sources below, not copied; where the result depends on
tie-breaking or rounding it uses the same tensor operation and dtype as the source (``torch.topk`` vs
``torch.sort`` vs ``torch.argmax``; float64 vs the logits' dtype).

Sources read:

* LLaDA: ``ML-GSAI/LLaDA`` ``generate.py`` at commit b7e6c3565f194352da44b38dd12b6970597309f3
  (the file last changed in 65cbed2, 2025-10-23).
* Fast-dLLM v1: ``NVlabs/Fast-dLLM`` ``v1/llada/generate.py`` at upstream commit
  a9b81e4caa240c8cad4f7dc1889ff4852a0fca5b (2026-05-30; the sampling logic last changed in 5332e2f, 2025-11-28:
  vectorised ``get_transfer_index`` with the "always commit the argmax" rule, and ``get_transfer_index_dynamic``
  with its empty-row guard).
* Dream: ``generation_utils.py`` of the HF repos ``Dream-org/Dream-v0-{Base,Instruct}-7B`` (batched version,
  ``alg`` in origin / maskgit_plus / topk_margin / entropy), read as mirrored in ``NVlabs/Fast-dLLM``
  ``v1/dream/model/generation_utils.py`` at a9b81e4 (which adds a ``confidence_threshold`` alg, not reproduced
  here) and ``ZHZisZZ/dllm`` ``dllm/pipelines/dream/models/generation_utils.py`` at
  81c80162c35bc308ac46faae13d3af5731f29ad5 (plain HF copy).

Randomness: wherever a source draws from torch's global RNG, these functions take a ``generator`` and draw the
same shape/dtype from it in the same order (``None`` = global RNG, as the source does).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

ModelFn = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "llada_add_gumbel_noise", "llada_num_transfer_tokens", "llada_generate",
    "fastdllm_num_transfer_tokens", "fastdllm_transfer_index", "fastdllm_transfer_index_dynamic",
    "fastdllm_generate",
    "dream_sample_tokens", "dream_generate",
]

NEG_INF = float("-inf")


# ----------------------------------------------------------------------------------------------------------------
# LLaDA (ML-GSAI/LLaDA generate.py)
# ----------------------------------------------------------------------------------------------------------------

def llada_add_gumbel_noise(logits: torch.Tensor, temperature: float,
                           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gumbel-max perturbation as LLaDA (and Fast-dLLM) do it: ``exp(logits) / (-log u) ** T`` in float64.

    ``u ~ U(0, 1)`` is drawn in float64 over the FULL logits shape (B, L, V). With ``temperature == 0`` the input
    tensor itself is returned (the same object, which matters for LLaDA's ``confidence_eos_eot_inf`` aliasing).
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64, device=logits.device)
    return logits.exp() / (-torch.log(u)) ** temperature


def llada_num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """Per-row quota for each of ``steps`` steps: ``n // steps`` each, the first ``n % steps`` steps get one more."""
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    quota = torch.zeros(mask_num.size(0), steps, device=mask_index.device, dtype=torch.int64) + base
    for row in range(mask_num.size(0)):
        quota[row, : int(remainder[row])] += 1
    return quota


@torch.no_grad()
def llada_generate(model_fn: ModelFn, prompt: torch.Tensor, steps: int, gen_length: int, block_length: int,
                   temperature: float = 0.0, remasking: str = "low_confidence", *, mask_id: int,
                   generator: Optional[torch.Generator] = None, cfg_scale: float = 0.0,
                   logits_eos_inf: bool = False, confidence_eos_eot_inf: bool = False,
                   eos_id: int = 126081, eot_id: int = 126348,
                   history: Optional[list] = None) -> torch.Tensor:
    """LLaDA's reference sampler (``generate`` in ML-GSAI/LLaDA ``generate.py`` @ b7e6c356), without padding.

    * ``gen_length % block_length == 0`` and ``steps % num_blocks == 0`` are asserted; every block runs exactly
      ``steps // num_blocks`` forward passes (a FIXED count: steps whose quota is 0 still cost a forward).
    * Each step: full forward on the whole sequence; ``x0 = argmax(gumbel(logits))``; confidence = softmax prob of
      ``x0`` computed in the LOGITS' dtype (upstream dropped float64 here in f51cb17), or ``U(0,1)`` float32 for
      ``remasking="random"``; positions after the current block and non-masked positions get ``-inf``; each row
      commits ``torch.topk(confidence[j], k=quota[j, step])``.
    * ``cfg_scale > 0``: second half of the batch is ``x`` with the ORIGINAL prompt positions set to mask;
      ``logits = un + (cfg_scale + 1) * (cond - un)`` (noise then drawn over the combined (B, L, V) logits).
    * ``logits_eos_inf`` sets logit ``eos_id`` to -inf before sampling. ``confidence_eos_eot_inf`` reproduces the
      upstream chained assignment ``logits_with_noise[..., EOS] = logits[..., EoT] = -inf`` after ``x0`` is drawn:
      at temperature 0 both tensors are the same object so both EOS and EoT confidences become 0; at temperature
      > 0 only EoT's confidence is affected (the EOS write lands on the already-used noisy copy).
    * ``history``, if given, receives ``x.clone()`` after every step.
    """
    batch, prompt_len = prompt.shape
    x = torch.full((batch, prompt_len + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_len] = prompt.clone()
    prompt_index = x != mask_id

    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    assert steps % num_blocks == 0
    steps_per_block = steps // num_blocks
    in_place = logits_eos_inf or confidence_eos_eot_inf

    for block in range(num_blocks):
        start = prompt_len + block * block_length
        end = start + block_length
        quota = llada_num_transfer_tokens(x[:, start:end] == mask_id, steps_per_block)
        for step in range(steps_per_block):
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                both = model_fn(torch.cat([x, un_x], dim=0))
                cond, uncond = torch.chunk(both, 2, dim=0)
                logits = uncond + (cfg_scale + 1) * (cond - uncond)
            else:
                logits = model_fn(x)
                if in_place:  # upstream edits the model's output in place; do it on a copy
                    logits = logits.clone()

            if logits_eos_inf:
                logits[:, :, eos_id] = NEG_INF

            noisy = llada_add_gumbel_noise(logits, temperature, generator)
            x0 = torch.argmax(noisy, dim=-1)

            if confidence_eos_eot_inf:
                noisy[:, :, eos_id] = NEG_INF  # `noisy is logits` when temperature == 0
                logits[:, :, eot_id] = NEG_INF

            if remasking == "low_confidence":
                p = F.softmax(logits, dim=-1)
                x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
            elif remasking == "random":
                x0_p = torch.rand((x0.shape[0], x0.shape[1]), generator=generator, device=x0.device)
            else:
                raise NotImplementedError(remasking)

            x0_p[:, end:] = NEG_INF
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, NEG_INF)

            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for row in range(confidence.shape[0]):
                _, chosen = torch.topk(confidence[row], k=int(quota[row, step]))
                transfer[row, chosen] = True
            x[transfer] = x0[transfer]
            if history is not None:
                history.append(x.clone())
    return x


# ----------------------------------------------------------------------------------------------------------------
# Fast-dLLM v1 (NVlabs/Fast-dLLM v1/llada/generate.py), no-cache `generate`
# ----------------------------------------------------------------------------------------------------------------

def fastdllm_num_transfer_tokens(block_mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """Fast-dLLM's vectorised rewrite of LLaDA's quota (same values): base everywhere, +1 on the first rem steps."""
    total = block_mask_index.sum(dim=1)
    base = torch.div(total, steps, rounding_mode="floor")
    rem = total - base * steps
    quota = base.unsqueeze(1).expand(-1, steps).to(torch.long)
    cols = torch.arange(steps, device=block_mask_index.device).unsqueeze(0)
    return quota + (cols < rem.unsqueeze(1)).to(torch.long)


def fastdllm_transfer_index(logits: torch.Tensor, temperature: float, remasking: str, mask_index: torch.Tensor,
                            x: torch.Tensor, num_transfer_tokens: Optional[torch.Tensor],
                            threshold: Optional[float] = None,
                            generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast-dLLM ``get_transfer_index`` (current vectorised form). Returns ``(x0, transfer_index)``.

    Confidence is the float64 softmax prob of ``x0`` (``remasking="random"``: float64 ``U(0,1)``); non-masked
    positions get ``finfo(float64).min`` (not -inf).
    * threshold path: ``mask & (conf >= threshold)``, OR the row's ``torch.argmax(conf)`` (first index on ties),
      AND ``mask`` again (a row with no mask commits nothing).
    * quota path: ``torch.sort(conf, descending=True)`` (not topk), the first ``k[row]`` sorted positions, AND mask.
    """
    noisy = llada_add_gumbel_noise(logits, temperature, generator)
    x0 = torch.argmax(noisy, dim=-1)

    if remasking == "low_confidence":
        p = F.softmax(logits.to(torch.float64), dim=-1)
        x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
    elif remasking == "random":
        x0_p = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
    else:
        raise NotImplementedError(remasking)

    x0 = torch.where(mask_index, x0, x)
    floor = torch.tensor(torch.finfo(x0_p.dtype).min, device=x0_p.device, dtype=x0_p.dtype)
    confidence = torch.where(mask_index, x0_p, floor)

    if threshold is not None:
        transfer = mask_index & (confidence >= threshold)
        best = torch.argmax(confidence, dim=1, keepdim=True)
        forced = torch.zeros_like(transfer).scatter_(1, best, True)
        return x0, (transfer | forced) & mask_index

    if num_transfer_tokens is None:
        raise ValueError("num_transfer_tokens must be a tensor when threshold is None.")
    k = num_transfer_tokens
    if k.dim() == 2 and k.size(1) == 1:
        k = k.squeeze(1)
    k = torch.clamp(k.to(dtype=torch.long, device=confidence.device), min=0)

    _, order = torch.sort(confidence, dim=1, descending=True)
    batch, length = confidence.shape
    rank = torch.arange(length, device=confidence.device).unsqueeze(0).expand(batch, length)
    take_sorted = rank < k.unsqueeze(1).expand(batch, length)
    taken = torch.zeros(batch, length, device=confidence.device, dtype=torch.int8)
    taken = taken.scatter(1, order, take_sorted.to(torch.int8))
    return x0, taken.bool() & mask_index


def fastdllm_transfer_index_dynamic(logits: torch.Tensor, temperature: float, remasking: str,
                                    mask_index: torch.Tensor, x: torch.Tensor, factor: float = 1,
                                    generator: Optional[torch.Generator] = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast-dLLM ``get_transfer_index_dynamic`` (the ``factor`` rule), quirks included.

    Per row with ``n`` masked positions: thresholds for 0-based sorted rank ``r`` are ``1 - factor / (r + 2)``
    with rank 0's replaced by -1 (always accepted); scan ranks in order and stop at the first rank ``f`` whose
    sorted confidence is below its threshold; commit ``torch.topk(conf_row, k)`` with ``k = f`` — EXCEPT that when
    the scan fails at the LAST rank (``f == n - 1``) or never fails, ``k = n`` (all). So a row whose only failing
    candidate is its least confident one still commits everything. Confidence: float64 softmax prob of ``x0``
    (``random``: float32 ``U(0,1)`` — unlike ``fastdllm_transfer_index``); non-masked positions get ``-inf``.
    """
    noisy = llada_add_gumbel_noise(logits, temperature, generator)
    x0 = torch.argmax(noisy, dim=-1)
    if remasking == "low_confidence":
        p = F.softmax(logits.to(torch.float64), dim=-1)
        x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
    elif remasking == "random":
        x0_p = torch.rand((x0.shape[0], x0.shape[1]), generator=generator, device=x0.device)
    else:
        raise NotImplementedError(remasking)

    x0 = torch.where(mask_index, x0, x)
    confidence = torch.where(mask_index, x0_p, NEG_INF)

    transfer = torch.zeros_like(x0, dtype=torch.bool)
    counts = mask_index.sum(dim=1, keepdim=True)
    for row in range(confidence.shape[0]):
        n = int(counts[row].item())
        if n == 0:
            continue
        thresholds = [1 - factor / (rank + 1) for rank in range(1, n + 1)]
        thresholds[0] = -1
        ranked = torch.sort(confidence[row][mask_index[row]], dim=-1, descending=True)[0]
        assert len(ranked) == len(thresholds)
        for top_i in range(n):
            if ranked[top_i] < thresholds[top_i]:
                break
        if top_i == 0 or top_i == n - 1:
            top_i += 1
        _, chosen = torch.topk(confidence[row], k=top_i)
        transfer[row, chosen] = True
    return x0, transfer


@torch.no_grad()
def fastdllm_generate(model_fn: ModelFn, prompt: torch.Tensor, steps: int, gen_length: int, block_length: int,
                      temperature: float = 0.0, *, mask_id: int, threshold: Optional[float] = None,
                      factor: Optional[float] = None, remasking: str = "low_confidence",
                      generator: Optional[torch.Generator] = None, history: Optional[list] = None,
                      return_nfe: bool = False):
    """Fast-dLLM v1 ``generate`` (no KV cache), ``v1/llada/generate.py`` @ a9b81e4.

    Block loop: for each block the loop is ``while True`` and ends when the block has NO mask left (checked after
    each commit, over the whole batch), not after a fixed number of steps. Consequences:
    * ``factor`` set → ``fastdllm_transfer_index_dynamic`` (``threshold`` ignored);
    * else ``threshold`` set → threshold rule, ``steps`` only has to satisfy the divisibility assert;
    * else quota path (``fastdllm_num_transfer_tokens`` per block, selection via ``torch.sort``): same tokens as
      LLaDA at temperature 0 up to tie-breaking, but a block ends as soon as it is full, so when
      ``steps_per_block > block_length`` the trailing zero-quota steps are skipped (NFE = min(steps_per_block,
      masks)). Indexing past the quota table raises IndexError, as upstream would.
    Every step is a full forward over the whole sequence; commits are restricted to masks before the block end.
    Returns ``x`` or ``(x, nfe)`` with ``return_nfe=True``.
    """
    batch, prompt_len = prompt.shape
    x = torch.full((batch, prompt_len + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_len] = prompt.clone()

    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    assert steps % num_blocks == 0
    steps_per_block = steps // num_blocks

    nfe = 0
    for block in range(num_blocks):
        start = prompt_len + block * block_length
        end = start + block_length
        quota = fastdllm_num_transfer_tokens(x[:, start:end] == mask_id, steps_per_block)
        step = 0
        while True:
            nfe += 1
            mask_index = x == mask_id
            logits = model_fn(x)
            mask_index[:, end:] = False
            if factor is None:
                x0, transfer = fastdllm_transfer_index(
                    logits, temperature, remasking, mask_index, x,
                    quota[:, step] if threshold is None else None, threshold, generator)
            else:
                x0, transfer = fastdllm_transfer_index_dynamic(
                    logits, temperature, remasking, mask_index, x, factor, generator)
            x[transfer] = x0[transfer]
            if history is not None:
                history.append(x.clone())
            step += 1
            if (x[:, start:end] == mask_id).sum() == 0:
                break
    return (x, nfe) if return_nfe else x


# ----------------------------------------------------------------------------------------------------------------
# Dream (Dream-org generation_utils.py: diffusion_generate -> _sample)
# ----------------------------------------------------------------------------------------------------------------

def _dream_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_logits, sorted_idx = torch.sort(logits, descending=True)
    cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cum > top_p
    remove[..., 1:] = remove[..., :-1].clone()  # keep the first token that crosses top_p
    remove[..., 0] = 0
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, sorted_idx, remove)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def _dream_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    top_k = min(top_k, logits.size(-1))
    kth = torch.topk(logits, top_k)[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def _categorical_sample(probs: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``torch.distributions.Categorical(probs=probs).sample()``; with a generator, the same draw from it."""
    dist = torch.distributions.Categorical(probs=probs)  # validates + renormalises like upstream
    if generator is None:
        return dist.sample()
    flat = dist.probs.reshape(-1, probs.size(-1))
    return torch.multinomial(flat, 1, True, generator=generator).T.reshape(dist.batch_shape)


def dream_sample_tokens(logits: torch.Tensor, temperature: float = 0.0, top_p: Optional[float] = None,
                        top_k: Optional[int] = None, margin_confidence: bool = False, neg_entropy: bool = False,
                        generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream ``sample_tokens`` on (N, V) logits → ``(confidence, x0)``.

    logits / T (if T > 0) → top-p (if < 1) → top-k → softmax in the logits' dtype. T > 0: categorical sample
    (falls back to argmax if sampling raises), confidence = its prob; T == 0: ``probs.max(-1)``. Then the
    confidence is replaced by ``p1 - p2`` (margin) or ``sum(p * log(p + 1e-10))`` (negative entropy), both computed
    on the temperature/top-p/top-k processed distribution.
    """
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = _dream_top_p(logits, top_p)
    if top_k is not None:
        logits = _dream_top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)

    if temperature > 0:
        try:
            x0 = _categorical_sample(probs, generator)
            confidence = torch.gather(probs, -1, x0.unsqueeze(-1)).squeeze(-1)
        except Exception:
            confidence, x0 = probs.max(dim=-1)
    else:
        confidence, x0 = probs.max(dim=-1)

    if margin_confidence:
        sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = sorted_probs[:, 0] - sorted_probs[:, 1]
    if neg_entropy:
        log_probs = torch.log(probs + 1e-10)
        confidence = torch.sum(probs * log_probs, dim=-1)
    return confidence, x0


def dream_shift_logits(logits: torch.Tensor) -> torch.Tensor:
    """Dream's alignment: the prediction for position i is the model's output at i-1 (position 0 keeps its own)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


@torch.no_grad()
def dream_generate(model_fn: ModelFn, prompt: torch.Tensor, gen_length: int, steps: int, temperature: float = 0.0,
                   top_p: Optional[float] = None, top_k: Optional[int] = None, alg: str = "entropy",
                   alg_temp: Optional[float] = None, eps: float = 1e-3, *, mask_id: int,
                   generator: Optional[torch.Generator] = None, history: Optional[list] = None) -> torch.Tensor:
    """Dream ``diffusion_generate(max_new_tokens=gen_length)`` → ``_sample`` without padding (attention "full").

    * ``x = pad(prompt, gen_length, value=mask_id)``; ``timesteps = torch.linspace(1, eps, steps + 1)`` (float32).
    * Every one of the ``steps`` steps: full forward; logits shifted with ``dream_shift_logits``; the masked rows
      of the shifted logits go through ``dream_sample_tokens``.
    * ``origin``: each masked position independently commits with prob ``1 - s/t`` (``torch.rand`` over the masked
      positions; everything on the last step); the sampled token for the chosen ones.
    * ``maskgit_plus`` / ``topk_margin`` / ``entropy``: ``n = int(mask_count.sum() / B * (1 - s/t))`` in float32
      (``int(mask_count / B)`` on the last step), so with ``steps`` close to ``gen_length`` many steps have n = 0
      and commit nothing (a forward pass is still spent). Confidence goes into a (B, L) tensor of -inf in the
      logits' dtype; ``torch.topk(full, n)`` per row (or, with ``alg_temp > 0``, ``torch.multinomial`` of
      ``softmax(full / alg_temp)``); the chosen positions take ``x0`` (a chosen non-masked position — possible
      only if rows have different mask counts — would be overwritten with ``mask_id``, as upstream).
    * ``history`` receives ``x.clone()`` after every step.
    """
    x = F.pad(prompt, (0, gen_length), value=mask_id)
    timesteps = torch.linspace(1, eps, steps + 1, device=x.device)

    for i in range(steps):
        mask_index = x == mask_id
        logits = dream_shift_logits(model_fn(x))
        mask_logits = logits[mask_index]
        t = timesteps[i]
        s = timesteps[i + 1]

        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            x0 = torch.zeros_like(x[mask_index], dtype=torch.long) + mask_id
            chosen = torch.rand(*x0.shape, generator=generator, device=x.device) < p_transfer
            _, x0[chosen] = dream_sample_tokens(mask_logits[chosen], temperature=temperature, top_p=top_p,
                                                top_k=top_k, generator=generator)
            x[mask_index] = x0.clone()
        else:
            if alg == "maskgit_plus":
                confidence, x0 = dream_sample_tokens(mask_logits, temperature=temperature, top_p=top_p,
                                                     top_k=top_k, generator=generator)
            elif alg == "topk_margin":
                confidence, x0 = dream_sample_tokens(mask_logits, temperature=temperature, top_p=top_p,
                                                     top_k=top_k, margin_confidence=True, generator=generator)
            elif alg == "entropy":
                confidence, x0 = dream_sample_tokens(mask_logits, temperature, top_p=top_p, top_k=top_k,
                                                     neg_entropy=True, generator=generator)
            else:
                raise RuntimeError(f"Unknown alg: {alg}")
            num_mask_token = mask_index.sum() / mask_index.shape[0]
            n = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
            full_confidence = torch.full_like(x, NEG_INF, dtype=logits.dtype)
            full_confidence[mask_index] = confidence
            if n > 0:
                if alg_temp is None or alg_temp == 0:
                    _, transfer = torch.topk(full_confidence, n)
                else:
                    weights = F.softmax(full_confidence / alg_temp, dim=-1)
                    transfer = torch.multinomial(weights, num_samples=n, generator=generator)
                x_ = torch.zeros_like(x) + mask_id
                x_[mask_index] = x0.clone()
                rows = torch.arange(x.size(0), device=x.device).unsqueeze(1).expand_as(transfer)
                x[rows, transfer] = x_[rows, transfer]

        if history is not None:
            history.append(x.clone())
    return x


def before_first_eos(x: torch.Tensor, eos_ids: tuple[int, ...]) -> list[list[int]]:
    """Each row up to its first EOS/end-of-turn token: what a Completion's token_ids hold."""
    rows = []
    for row in x.tolist():
        cut = min([row.index(e) for e in eos_ids if e in row], default=len(row))
        rows.append(row[:cut])
    return rows
