"""The MoE layer: top-k routing, group limits and shared experts as configured; only routed experts run, batched
by expert; a token's output does not depend on the other tokens of the batch."""
from __future__ import annotations

import pytest
import torch

from unmask.models.moe import MoE, MoEConfig


def layer(**kw) -> MoE:
    cfg = MoEConfig(**{"n_experts": 8, "top_k": 2, "expert_hidden": 8, **kw})
    torch.manual_seed(0)
    moe = MoE(16, cfg)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return moe


def test_top_k_picks_the_highest_scores_and_renormalises():
    moe = layer(scoring="softmax", norm_topk=True)
    x = torch.randn(5, 16)
    experts, weights = moe.gate(x)
    probs = (x @ moe.gate.weight.t()).softmax(-1)
    assert torch.equal(experts.sort(-1).values, probs.topk(2, -1).indices.sort(-1).values)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))


def test_group_limit_only_chooses_experts_of_the_best_groups():
    moe = layer(scoring="sigmoid", expert_bias=True, n_group=4, topk_group=1, top_k=2)
    with torch.no_grad():
        moe.gate.expert_bias.copy_(torch.tensor([0, 0, 0, 0, 0, 0, 5.0, 5.0]))   # group 3 wins for every token
    experts, weights = moe.gate(torch.randn(6, 16))
    assert set(experts.flatten().tolist()) == {6, 7}
    # the bias chooses experts but does not weigh them: weights are the renormalised sigmoid scores
    assert (weights < 1).all() and torch.allclose(weights.sum(-1), torch.ones(6))


def test_only_routed_experts_run():
    moe = layer(top_k=1)
    calls = []
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda m, i, o, e=e: calls.append((e, i[0].shape[0])))
    x = torch.randn(1, 7, 16)
    experts, _ = moe.gate(x.view(-1, 16))
    moe(x)
    used = torch.bincount(experts.flatten(), minlength=8)
    assert calls == [(e, int(n)) for e, n in enumerate(used) if n]      # one call per used expert, all its tokens


def test_shared_experts_are_added_to_every_token():
    moe = layer(shared_hidden=16)
    x = torch.randn(1, 3, 16)
    routed_only = moe(x) - moe.shared_experts(x)
    del moe.shared_experts
    torch.testing.assert_close(moe(x), routed_only)


@pytest.mark.parametrize("kw", [{}, {"scoring": "sigmoid", "expert_bias": True, "n_group": 4, "topk_group": 2,
                                     "shared_hidden": 8, "routed_scale": 2.5}])
def test_a_tokens_output_does_not_depend_on_the_batch(kw):
    moe = layer(**kw)
    x = torch.randn(2, 9, 16)
    together = moe(x)
    for b in range(2):
        for j in range(9):
            torch.testing.assert_close(moe(x[b:b + 1, j:j + 1])[0, 0], together[b, j], atol=1e-6, rtol=1e-5)


def test_impossible_routing_is_refused():
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        MoEConfig(n_experts=4, top_k=5, expert_hidden=4).check()
    with pytest.raises(ValueError, match="topk_group"):
        MoEConfig(n_experts=8, top_k=6, expert_hidden=4, n_group=4, topk_group=2).check()
