"""A re-implementation of SlowFast sampling's loop (batch 1, temperature 0, no CFG, no dLLM-Cache): the oracle for
unmask's `slowfast` commit rule.

Source read (written from a reading, not copied): ``generate_slow_fast_sampling`` in
``LiangrunFlora/Slow-Fast-Sampling`` ``slow-fast-sampling/sampling_utils/generate_slow_fast_sampling.py``.

Per block, sub-cycles until the block holds no mask; ``prev`` (offset in the block) starts at 0:
1. exploration, always ``k`` forwards over the whole sequence. While the span is not settled, each estimates
   ``prev`` + (farthest masked offset ≥ prev with confidence ≥ τ_span, relative to prev, + 1; 1 when none, 0 when
   prev is the block's end), clipped to [1, block]; with ≥ ``w`` estimates in the deque (maxlen w): population std <
   σ → span end = latest estimate, settled; else span end = int(mean), settled only at the last exploration step.
   Each forward then commits in [prev, block end): the masks with confidence ≥ τ if more than one, else the best.
2. fast, until [prev, span end) holds no mask: the first forward sees the whole sequence, later ones only
   ``x[:, :prompt + block start + span end]``; commits as above inside [prev, span end).
3. prev ← span end.
Confidence: softmax probability of the argmax at masked positions, −inf elsewhere.
Returns (x, nfe); ``wasted`` counts the forwards that committed nothing (the reference spends its exploration steps
even after the block is full).
"""
from __future__ import annotations

import statistics
from collections import deque

import torch


@torch.no_grad()
def slowfast_generate(model_fn, prompt: torch.Tensor, gen_length: int, block_length: int, *, mask_id: int,
                      k: int = 6, span_threshold: float = 0.3, window: int = 2, std: float = 1.0,
                      threshold: float = 0.9) -> tuple[torch.Tensor, int, int]:
    assert prompt.shape[0] == 1
    P = prompt.shape[1]
    x = torch.cat([prompt, torch.full((1, gen_length), mask_id, dtype=torch.long)], 1)
    nfe = wasted = 0

    def confidences(logits):
        gen = logits[0, P:]
        x0 = gen.argmax(-1)
        p = gen.softmax(-1).gather(-1, x0[:, None])[:, 0]
        masked = x[0, P:] == mask_id
        return x0, torch.where(masked[:p.shape[0]], p, torch.tensor(float("-inf")))

    def fill(x0, conf, lo, hi):
        scope = conf[lo:hi]
        masked = x[0, P + lo:P + hi] == mask_id
        if not masked.any():
            return 0
        sure = (scope >= threshold) & masked
        picks = sure.nonzero()[:, 0] if sure.sum() > 1 else scope.topk(1).indices
        x[0, P + lo + picks] = x0[lo + picks]
        return len(picks)

    for b in range(gen_length // block_length):
        s, e = b * block_length, (b + 1) * block_length
        prev = 0
        while (x[0, P + s:P + e] == mask_id).any():
            settled, history, end = False, deque(maxlen=window), block_length
            for step in range(k):
                nfe += 1
                x0, conf = confidences(model_fn(x))
                if not settled:
                    inc = 0
                    if prev < block_length:
                        above = (conf[s + prev:e] >= span_threshold).nonzero()[:, 0]
                        inc = int(above.max()) + 1 if len(above) else 1
                    history.append(min(max(1, prev + inc), block_length))
                    if len(history) >= window:
                        if statistics.pstdev(history) < std:
                            end, settled = history[-1], True
                        else:
                            end = max(1, min(int(statistics.mean(history)), block_length))
                            settled = step == k - 1
                wasted += fill(x0, conf, s + prev, e) == 0
            fast = 0
            while (x[0, P + s + prev:P + s + end] == mask_id).any():
                nfe += 1
                fast += 1
                logits = model_fn(x if fast == 1 else x[:, :P + s + end])
                x0, conf = confidences(logits)
                fill(x0, conf, s + prev, s + end)
            prev = end
    return x, nfe, wasted
