"""KLASS equals a re-implementation of the reference loop (`stable_confident_decode`, LLaDA, batch 1,
temperature 0) token for token, and keeps batch invariance through the engine's per-row memory."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import completions, tiny  # noqa: E402

from unmask.config import DecodeConfig  # noqa: E402

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40]]


def reference_klass(net, mask_id: int, prompt: list[int], gen: int, steps: int, block: int, conf: float,
                    kl_threshold: float, history: int) -> list[int]:
    """The reference's loop, written from its description: per block, up to steps/blocks steps; commit all
    masked block positions with conf > τ whose last `history` KLs < κ (from the block's step history-1 on),
    else the LLaDA quota's top-k by confidence."""
    x = torch.tensor([prompt + [mask_id] * gen])
    P, L = len(prompt), len(prompt) + gen
    positions = torch.arange(L)[None]
    V = net.cfg.vocab_size
    p_prev = torch.zeros(1, L, V, dtype=torch.float64)
    kl_hist = torch.zeros(1, L, history, dtype=torch.float64)
    per_block = steps // (gen // block)
    for b in range(gen // block):
        lo, hi = P + b * block, P + (b + 1) * block
        n = int((x[0, lo:hi] == mask_id).sum())
        quota = [n // per_block + (1 if i < n % per_block else 0) for i in range(per_block)]
        for step in range(per_block):
            masked = (x == mask_id)
            masked[:, :lo] = False
            masked[:, hi:] = False
            if not masked.any():
                break
            logits = net(x, positions)
            p = logits.double().softmax(-1)
            x0 = logits.masked_fill(torch.arange(V) == mask_id, float("-inf")).argmax(-1)   # the mask id is banned
            c = p.gather(-1, x0[..., None]).squeeze(-1)
            kl = (p * ((p + 1e-12).log() - (p_prev + 1e-12).log())).sum(-1)
            kl_hist = kl_hist.roll(-1, dims=-1)
            kl_hist[..., -1] = kl
            p_prev = p
            stable = (kl_hist < kl_threshold).all(-1) if step >= history - 1 else torch.zeros_like(masked)
            ready = stable & (c > conf) & masked
            if ready.any():
                take = ready
            else:
                score = torch.where(masked, c, torch.tensor(float("-inf"), dtype=c.dtype))
                take = torch.zeros_like(masked)
                take[0, score[0].topk(max(1, quota[step])).indices] = True
            x = torch.where(take, x0, x)
    out = x[0, P:].tolist()
    return out[:out.index(1)] if 1 in out else out   # a Completion's tokens stop before the first EOS (id 1)


@pytest.fixture(scope="module")
def llada():
    return tiny("llada")


CFG = dict(gen_length=16, block_length=8, steps=16, commit="klass", threshold=0.1, stop_at_eos=False,
           confidence_fp64=True)   # the tiny model's confidences are low: 0.1 lets stable tokens commit early


def decode(model, prompts, cfg):
    return completions(model, prompts, cfg)


@pytest.mark.parametrize("kl_threshold, history", [(0.01, 2), (0.05, 1), (0.5, 2), (5.0, 1), (5.0, 3)])
def test_klass_matches_the_reference_loop(llada, kl_threshold, history):
    net, spec = llada
    cfg = DecodeConfig(**CFG, kl_threshold=kl_threshold, kl_history=history)
    with torch.inference_mode():
        for prompt in PROMPTS:
            ref = reference_klass(net, spec.mask_id, prompt, 16, 16, 8, 0.1, kl_threshold, history)
            assert decode(llada, [prompt], cfg)[0].token_ids == ref


def test_stable_tokens_commit_early(llada):
    """The KL test does the work: loose bounds finish in fewer steps than the quota fallback alone."""
    quota = decode(llada, PROMPTS, DecodeConfig(**CFG, kl_threshold=1e-9))
    loose = decode(llada, PROMPTS, DecodeConfig(**CFG, kl_threshold=5.0, kl_history=1))
    assert all(q.nfe == 16 for q in quota) and sum(x.nfe for x in loose) < sum(q.nfe for q in quota) / 2


def test_klass_rows_are_independent_of_their_neighbours(llada):
    cfg = DecodeConfig(**CFG, kl_threshold=0.5)
    together = decode(llada, PROMPTS, cfg)
    for p, t in zip(PROMPTS, together):
        assert decode(llada, [p], cfg)[0].token_ids == t.token_ids
