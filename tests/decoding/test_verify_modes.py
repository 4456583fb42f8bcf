"""APD's correction token (apd_correct) and FreeCache's threshold / top-k acceptance (guided_accept), on
hand-made logits: each accepts exactly the tokens its rule says."""
import pytest
import torch

from unmask.config import DecodeConfig
from unmask.decoding.verify import AdaptiveParallelDecoding, GuidedDiffusion, gumbel_argmax
from unmask.errors import ConfigError
from tests.decoding.test_verify_rules import V, one_hot_logits


def test_apd_correct_writes_the_targets_token_at_the_first_disagreement():
    rule = AdaptiveParallelDecoding(apd_mixture_weight=0.5, apd_correct=True)
    dllm = one_hot_logits([[1, 2, 3, 4]] * 3, high=2.0)
    # mixture argmax per row: [1, 2, 0, 4] (AR insists on 0 at column 2), [1, 2, 3, 4] (AR too weak),
    # [5, 2, 3, 4] (AR insists on 5 at once): agree 2, 4, 0
    ar = torch.stack([one_hot_logits([[1, 2, 0, 4, 0]], 4.0)[0], one_hot_logits([[0, 0, 0, 0, 0]], 1.0)[0],
                      one_hot_logits([[5, 2, 3, 4, 0]], 4.0)[0]])
    draft, noise = rule.draft(dllm, None)
    verdict = rule.accept(draft, noise, dllm, ar, torch.tensor([4, 4, 4]), None)
    assert verdict.count.tolist() == [3, 4, 1]
    assert verdict.tokens[0, :3].tolist() == [1, 2, 0]     # the target's 0 replaces the draft's 3
    assert verdict.tokens[1, :4].tolist() == [1, 2, 3, 4]  # a fully agreeing draft: nothing after it
    assert verdict.tokens[2, :1].tolist() == [5]           # the first token is the target's, not the dLLM's
    paper = AdaptiveParallelDecoding(apd_mixture_weight=0.5).accept(draft, noise, dllm, ar, torch.tensor([4] * 3),
                                                                    None)
    assert paper.count.tolist() == [2, 4, 1] and paper.tokens[2, 0] == 1   # the paper's rule keeps the draft's 1


def test_apd_correct_never_writes_past_the_draft_run():
    rule = AdaptiveParallelDecoding(apd_mixture_weight=0.5, apd_correct=True)
    dllm = one_hot_logits([[1, 2, 3, 4]] * 2, high=2.0)
    ar = one_hot_logits([[1, 2, 0, 4, 0], [1, 2, 3, 4, 0]], 4.0)
    ar[1] = one_hot_logits([[1, 2, 3, 4, 0]], 1.0)[0]
    draft, noise = rule.draft(dllm, None)
    verdict = rule.accept(draft, noise, dllm, ar, torch.tensor([2, 3]), None)
    assert verdict.count.tolist() == [2, 3]                 # row 0 disagrees at column 2, outside its run of 2


def test_apd_correct_with_temperature_writes_the_targets_sample_under_the_shared_noise():
    rule = AdaptiveParallelDecoding(temperature=1.0, apd_mixture_weight=0.5, apd_correct=True)
    torch.manual_seed(0)
    B, K = 64, 5
    dllm, ar = torch.randn(B, K, V), 3 * torch.randn(B, K + 1, V)
    gens = [torch.Generator().manual_seed(i) for i in range(B)]
    draft, noise = rule.draft(dllm, gens)
    target = gumbel_argmax(rule.target(dllm, ar[:, :-1]), noise, 1.0)
    verdict = rule.accept(draft, noise, dllm, ar, torch.full((B,), K), gens)
    for b in range(B):
        agree = next((k for k in range(K) if draft[b, k] != target[b, k]), K)
        assert int(verdict.count[b]) == min(agree + 1, K)
        assert verdict.tokens[b, :agree].tolist() == draft[b, :agree].tolist()
        if agree < K:
            assert int(verdict.tokens[b, agree]) == int(target[b, agree])
    assert 0 < int((verdict.count < K).sum()) < B          # both cases occur


def ar_from_probs(rows: list[list[list[float]]]) -> torch.Tensor:
    return torch.tensor(rows).clamp(min=1e-12).log()


# one row, draft [1, 2, 3, 4]; the AR's probabilities at the 4 draft positions and after them:
#   column 0: draft 1 is the argmax; column 1: draft 2 has 0.3 (rank 2, argmax 0 at 0.6);
#   column 2: draft 3 has 0.1 (rank 3: 0 at 0.5, 5 at 0.3); column 3: draft 4 is the argmax; then 5.
PROBS = [[[0.0, 0.9, 0.02, 0.02, 0.03, 0.03], [0.6, 0.02, 0.3, 0.02, 0.03, 0.03],
          [0.5, 0.04, 0.03, 0.1, 0.03, 0.3], [0.02, 0.02, 0.02, 0.02, 0.9, 0.02],
          [0.02, 0.02, 0.02, 0.02, 0.02, 0.9]]]


@pytest.mark.parametrize("knobs, count, written", [
    ({"guided_accept": "exact"}, 2, [1, 0]),                                 # stops at column 1: AR's 0
    ({"guided_accept": "threshold", "guided_threshold": 0.25}, 3, [1, 2, 0]),  # 0.3 ≥ 0.25, 0.1 < 0.25
    ({"guided_accept": "threshold", "guided_threshold": 0.35}, 2, [1, 0]),     # 0.3 < 0.35
    ({"guided_accept": "threshold", "guided_threshold": 0.05}, 5, [1, 2, 3, 4, 5]),  # all, + the AR's next
    ({"guided_accept": "topk", "guided_top_k": 2}, 3, [1, 2, 0]),            # rank 2 in, rank 3 out
    ({"guided_accept": "topk", "guided_top_k": 3}, 5, [1, 2, 3, 4, 5]),
    ({"guided_accept": "topk", "guided_top_k": 1}, 2, [1, 0]),               # top-1 = exact
])
def test_guided_acceptance_modes(knobs, count, written):
    rule = GuidedDiffusion(**knobs)
    draft = torch.tensor([[1, 2, 3, 4]])
    verdict = rule.accept(draft, None, one_hot_logits([[1, 2, 3, 4]], 5.0), ar_from_probs(PROBS),
                          torch.tensor([4]), None)
    assert verdict.count.tolist() == [count]
    assert verdict.tokens[0, :count].tolist() == written


def test_guided_modes_respect_the_draft_length():
    rule = GuidedDiffusion(guided_accept="topk", guided_top_k=3)
    verdict = rule.accept(torch.tensor([[1, 2, 3, 4]]), None, one_hot_logits([[1, 2, 3, 4]], 5.0),
                          ar_from_probs(PROBS), torch.tensor([2]), None)
    assert verdict.count.tolist() == [3] and verdict.tokens[0, :3].tolist() == [1, 2, 0]   # + the AR's token at 2


def test_config_checks_of_the_new_knobs():
    assert DecodeConfig(verify="apd", apd_correct=True).apd_correct
    assert DecodeConfig(verify="guided", guided_accept="topk", guided_top_k=3).guided_top_k == 3
    with pytest.raises(ConfigError, match="unknown guided_accept 'top2'; choose one of: exact, threshold, topk"):
        DecodeConfig(verify="guided", guided_accept="top2")
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="guided_threshold"):
            DecodeConfig(verify="guided", guided_accept="threshold", guided_threshold=bad)
    with pytest.raises(ConfigError, match="guided_top_k"):
        DecodeConfig(verify="guided", guided_accept="topk", guided_top_k=0)
    with pytest.raises(ConfigError, match="apd_correct"):
        DecodeConfig(verify="apd", apd_correct="yes")
