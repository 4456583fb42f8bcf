"""The acceptance rules of AR-verified decoding (APD, SpecDiff, guided) on hand-made logits."""
import pytest
import torch

from unmask.config import DecodeConfig
from unmask.decoding.verify import VERIFY, AdaptiveParallelDecoding, GuidedDiffusion, SpeculativeDiffusion, leading_true
from unmask.errors import ConfigError

V = 6


def one_hot_logits(tokens: list[list[int]], high: float = 5.0) -> torch.Tensor:
    """(B, K, V) logits whose argmax at [b, k] is tokens[b][k] (logit `high`, the rest 0)."""
    out = torch.zeros(len(tokens), len(tokens[0]), V)
    for b, row in enumerate(tokens):
        for k, t in enumerate(row):
            out[b, k, t] = high
    return out


def test_leading_true_counts_only_the_first_length_columns():
    flags = torch.tensor([[True, True, False, True], [True, True, True, True], [False, True, True, True]])
    assert leading_true(flags, torch.tensor([4, 3, 4])).tolist() == [2, 3, 0]


def test_apd_accepts_the_prefix_where_draft_equals_the_mixture_target():
    rule = AdaptiveParallelDecoding(temperature=0.0, apd_mixture_weight=0.5)
    dllm = one_hot_logits([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]], high=2.0)
    # row 0: the AR agrees on 1, 2, then insists on 0 (4 > 2): mixture argmax 1, 2, 0, 4 → 2 accepted
    # row 1: the AR's disagreement is weaker than the dLLM's preference everywhere → all 4 accepted
    # row 2: disagrees at once → the first token is still accepted (APD always advances)
    ar = torch.stack([one_hot_logits([[1, 2, 0, 4, 0]], 4.0)[0], one_hot_logits([[0, 0, 0, 0, 0]], 1.0)[0],
                      one_hot_logits([[5, 2, 3, 4, 0]], 4.0)[0]])
    draft, noise = rule.draft(dllm, None)
    assert draft.tolist() == [[1, 2, 3, 4]] * 3
    verdict = rule.accept(draft, noise, dllm, ar, torch.tensor([4, 4, 4]), None)
    assert verdict.count.tolist() == [2, 4, 1]
    assert verdict.tokens[:, :4].tolist() == draft.tolist()   # APD writes its draft, never the AR's token


def test_apd_respects_the_draft_length_and_the_weight_extremes():
    dllm = one_hot_logits([[1, 2, 3, 4]], high=2.0)
    ar = one_hot_logits([[0, 0, 0, 0, 0]], high=9.0)
    length = torch.tensor([3])
    trust_dllm = AdaptiveParallelDecoding(apd_mixture_weight=1.0)
    draft, noise = trust_dllm.draft(dllm, None)
    assert trust_dllm.accept(draft, noise, dllm, ar, length, None).count.tolist() == [3]   # capped by length
    trust_ar = AdaptiveParallelDecoding(apd_mixture_weight=0.0)
    assert trust_ar.accept(draft, noise, dllm, ar, length, None).count.tolist() == [1]


def test_apd_samples_draft_and_target_with_the_same_noise():
    """With temperature, equal logits give equal samples under the shared noise: everything is accepted."""
    rule = AdaptiveParallelDecoding(temperature=1.0, apd_mixture_weight=0.3)
    logits = torch.randn(4, 8, V)
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    draft, noise = rule.draft(logits, gens)
    ar = torch.cat([logits, logits[:, :1]], 1)
    verdict = rule.accept(draft, noise, logits, ar, torch.full((4,), 8), gens)
    assert verdict.count.tolist() == [8] * 4


def test_apd_keeps_banned_ids_out_of_the_target():
    rule = AdaptiveParallelDecoding(apd_mixture_weight=0.5)
    dllm = one_hot_logits([[1, 1]], high=1.0)
    dllm[..., 2] = float("-inf")                       # the mask id, say
    ar = one_hot_logits([[2, 2, 2]], high=100.0)        # the AR loves it
    draft, noise = rule.draft(dllm, None)
    target = rule.target(dllm, ar[:, :-1])
    assert torch.isneginf(target[..., 2]).all() and target.argmax(-1).tolist() == [[1, 1]]


@pytest.mark.parametrize("rule", [SpeculativeDiffusion(), GuidedDiffusion()])
def test_greedy_verification_accepts_the_match_then_writes_the_ar_token(rule):
    dllm = one_hot_logits([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    ar = one_hot_logits([[1, 2, 0, 4, 5], [1, 2, 3, 4, 5], [3, 2, 3, 4, 5]])
    draft, ctx = rule.draft(dllm, None)
    verdict = rule.accept(draft, ctx, dllm, ar, torch.tensor([4, 4, 2]), None)
    assert verdict.count.tolist() == [3, 5, 1]
    assert verdict.tokens[0, :3].tolist() == [1, 2, 0]            # first mismatch → the AR's token
    assert verdict.tokens[1].tolist() == [1, 2, 3, 4, 5]          # all accepted → the AR's next token too
    assert verdict.tokens[2, :1].tolist() == [3]
    short = rule.accept(draft[1:2], ctx, dllm[1:2], ar[1:2], torch.tensor([2]), None)
    assert short.count.tolist() == [3] and short.tokens[0, :3].tolist() == [1, 2, 3]   # bonus after 2 drafted


def test_speculative_sampling_keeps_the_verifier_distribution():
    """Draft x ~ q, accept with min(1, p/q), else resample from (p − q)+: the written token is distributed as p."""
    B = 20000
    torch.manual_seed(0)
    q = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    p = torch.tensor([0.1, 0.3, 0.6, 0.0, 0.0, 0.0])
    dllm = q.clamp(min=1e-30).log().expand(B, 1, V).clone()
    ar = torch.stack([p.clamp(min=1e-30).log(), p.clamp(min=1e-30).log()]).expand(B, 2, V).clone()
    rule = SpeculativeDiffusion(temperature=1.0)
    draft, ctx = rule.draft(dllm, None)
    verdict = rule.accept(draft, ctx, dllm, ar, torch.ones(B, dtype=torch.long), None)
    first = verdict.tokens[:, 0]
    freq = torch.bincount(first, minlength=V).float() / B
    assert torch.allclose(freq, p, atol=0.015), freq
    accepted = (verdict.count == 2).float().mean()                 # P(accept) = Σ min(p, q) = 0.1 + 0.3
    assert abs(float(accepted) - 0.4) < 0.015


def test_registry_names_and_config_checks():
    assert VERIFY.names() == ["apd", "guided", "specdiff"]
    with pytest.raises(ConfigError, match="unknown verify rule 'nope'"):
        DecodeConfig(verify="nope")
    with pytest.raises(ConfigError, match="remask='wino'"):
        DecodeConfig(verify="apd", remask="wino")
    with pytest.raises(ConfigError, match="deterministic mode"):
        DecodeConfig(verify="guided", temperature=0.5)
    with pytest.raises(ConfigError, match="apd_mixture_weight"):
        DecodeConfig(verify="apd", apd_mixture_weight=1.5)
    with pytest.raises(ConfigError, match="verify_lookahead"):
        DecodeConfig(verify="specdiff", verify_lookahead=0)
    for name in ("apd", "specdiff", "guided-diffusion"):
        assert DecodeConfig.preset(name).verify in VERIFY
