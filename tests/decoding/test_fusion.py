"""dInfer's credit fusion equals a re-implementation of `CreditThresholdParallelDecoder` (batch 1, temperature 0,
threshold commits as the `threshold` rule), changes decoding, and keeps batch invariance."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import completions, tiny  # noqa: E402

from unmask.config import DecodeConfig  # noqa: E402

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40]]
CFG = dict(gen_length=16, block_length=8, commit="threshold", threshold=0.2, stop_at_eos=False, confidence_fp64=True,
           logits_fusion="credit", credit_alpha=2.0)


def reference_credit(net, mask_id, prompt, gen, block, threshold, alpha, gamma, beta):
    """Per block a (block, V) credit matrix: decay by β from the block's second step, add p_top1^γ at the top-1
    token of masked positions, decode from logits + α·log(1 + credit)."""
    x = torch.tensor([prompt + [mask_id] * gen])
    P = len(prompt)
    positions = torch.arange(P + gen)[None]
    V = net.cfg.vocab_size
    for b in range(gen // block):
        lo, hi = P + b * block, P + (b + 1) * block
        credit, it = torch.zeros(1, block, V), 0
        while (x[:, lo:hi] == mask_id).any():
            logits = net(x, positions)[:, lo:hi]
            masked = x[:, lo:hi] == mask_id
            if it > 0:
                credit = credit * beta
            top_p, top_id = logits.float().softmax(-1).max(-1)
            credit = credit.scatter_add(2, top_id[..., None], (top_p.pow(gamma) * masked)[..., None])
            fused = logits + alpha * torch.log1p(credit)
            fused = fused.masked_fill(torch.arange(V) == mask_id, float("-inf"))
            p = fused.double().softmax(-1)
            x0 = p.argmax(-1)
            conf = torch.where(masked, p.gather(-1, x0[..., None]).squeeze(-1), torch.tensor(-1.0, dtype=p.dtype))
            take = (conf >= threshold) & masked
            take[0, conf[0].argmax()] = True
            x[:, lo:hi] = torch.where(take, x0, x[:, lo:hi])
            it += 1
    out = x[0, P:].tolist()
    return out[:out.index(1)] if 1 in out else out


def decode(model, prompts, cfg):
    return completions(model, prompts, cfg)


@pytest.fixture(scope="module")
def llada():
    return tiny("llada")


def test_credit_matches_the_reference_loop(llada):
    net, spec = llada
    with torch.inference_mode():
        for prompt in PROMPTS:
            ref = reference_credit(net, spec.mask_id, prompt, 16, 8, 0.2, 2.0, 0.2, 0.8)
            assert decode(llada, [prompt], DecodeConfig(**CFG))[0].token_ids == ref


def test_credit_changes_decoding_and_rows_stay_independent(llada):
    fused = decode(llada, PROMPTS, DecodeConfig(**CFG))
    plain = decode(llada, PROMPTS, DecodeConfig(**{**CFG, "logits_fusion": "none"}))
    assert [(c.token_ids, c.nfe) for c in fused] != [(c.token_ids, c.nfe) for c in plain]
    for p, t in zip(PROMPTS, fused):
        assert decode(llada, [p], DecodeConfig(**CFG))[0].token_ids == t.token_ids
