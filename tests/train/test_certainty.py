"""dParallel certainty forcing: the masking pattern with its complementary copy, and the loss by hand."""
from __future__ import annotations

import math

import torch

from unmask.models.cache_view import FullView
from unmask.train.certainty import answer_masks, certainty_loss, certainty_loss_on
from unmask.train.char_tokenizer import EOS_ID, MASK_ID
from unmask.train.data import collate


def test_block_pattern_and_its_complementary_copy() -> None:
    plan = answer_masks(40, 12, 4, torch.Generator().manual_seed(0), ratio=0.5)
    assert plan.rows.tolist() == list(range(40)) * 2        # every sample, then its complementary copy
    col = torch.arange(12)
    for b in range(40):
        first, comp = plan.masked[b], plan.masked[40 + b]
        block = first ^ comp                                  # positions masked in exactly one copy
        assert block.sum() == 4 and int(first[block].sum()) == 2 and int(comp[block].sum()) == 2
        lo = int(col[block].min())
        assert lo % 4 == 0 and torch.equal(col[block], torch.arange(lo, lo + 4))    # one whole block
        assert not first[:lo].any() and not comp[:lo].any()                         # earlier blocks clean
        assert first[lo + 4:].all() and comp[lo + 4:].all()                         # later blocks masked
    assert {int((plan.masked[b] ^ plan.masked[40 + b]).nonzero()[0]) for b in range(40)} == {0, 4, 8}


def test_full_mask_samples_mask_the_whole_answer_without_a_copy() -> None:
    plan = answer_masks(200, 12, 4, torch.Generator().manual_seed(1), ratio=0.25, full_mask_prob=0.5)
    full = plan.masked.all(-1)
    counts = torch.bincount(plan.rows, minlength=200)
    assert torch.equal(counts == 1, torch.zeros(200, dtype=torch.bool).index_fill_(0, plan.rows[full], True))
    assert 70 < int(full.sum()) < 130 and set(counts.tolist()) == {1, 2}
    for b in (counts == 2).nonzero().flatten().tolist():
        first, comp = plan.masked[plan.rows == b]               # the sample, then its copy
        block = first ^ comp
        assert int(block.sum()) == 4 and int(first[block].sum()) == 1 and int(comp[block].sum()) == 3
    none = answer_masks(50, 12, 4, torch.Generator().manual_seed(1), full_mask_prob=0.0).masked
    assert not none.all(-1).any()


def test_loss_matches_hand_computation_and_entropy_only_where_argmax_is_right() -> None:
    logits = torch.tensor([[[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [3.0, 0.0, 0.0], [0.2, 0.1, 2.5]]])
    target = torch.tensor([[0, 2, 0, 2]])
    masked = torch.tensor([[True, True, False, True]])      # position 1 masked but its argmax (1) is wrong
    loss, parts = certainty_loss_on(logits, target, masked, entropy_weight=2.0, temperature=0.5)

    def ce(row: list[float], t: int) -> float:
        return -row[t] + math.log(sum(math.exp(v) for v in row))

    def entropy(row: list[float]) -> float:
        z = [v / 0.5 for v in row]
        p = [math.exp(v) / sum(math.exp(w) for w in z) for v in z]
        return -sum(q * math.log(q) for q in p)

    rows = logits[0].tolist()
    want_ce = (ce(rows[0], 0) + ce(rows[1], 2) + ce(rows[3], 2)) / 3
    want_h = (entropy(rows[0]) + entropy(rows[3])) / 2        # positions 0 and 3: masked and right
    assert math.isclose(parts["ce"], want_ce, rel_tol=1e-5) and math.isclose(parts["entropy"], want_h, rel_tol=1e-5)
    assert math.isclose(loss.item(), want_ce + 2 * want_h, rel_tol=1e-5)
    assert math.isclose(parts["correct"], 2 / 3, rel_tol=1e-6)
    grad_logits = logits.clone().requires_grad_(True)
    certainty_loss_on(grad_logits, target, masked, entropy_weight=2.0, temperature=0.5)[0].backward()
    assert grad_logits.grad[0, 2].abs().sum() == 0              # the clean position is no target
    wrong_only = certainty_loss_on(logits, target, torch.tensor([[False, True, False, False]]))[1]
    assert wrong_only["entropy"] == 0.0 and wrong_only["correct"] == 0.0


def test_certainty_loss_feeds_the_masked_copies_to_the_model() -> None:
    from tests.train.test_mdlm import tiny_model

    model = tiny_model()
    batch = collate([([5, 6, 7], [8, 9, 10, EOS_ID]), ([11], [12, 13, EOS_ID, EOS_ID])])
    loss, parts = certainty_loss(model, batch, torch.Generator().manual_seed(3), block_length=2)
    plan = answer_masks(2, 4, 2, torch.Generator().manual_seed(3))
    ids = batch.input_ids[plan.rows]
    noisy = ids.clone()
    noisy[:, 3:] = torch.where(plan.masked, torch.tensor(MASK_ID), ids[:, 3:])
    with torch.no_grad():
        logits = model(noisy, batch.positions[plan.rows], FullView(batch.key_mask[plan.rows]))[:, 3:]
    want, _ = certainty_loss_on(logits, ids[:, 3:], plan.masked)
    assert math.isclose(loss.item(), want.item(), rel_tol=1e-5) and parts["ce"] > 0


def test_few_steps_reduce_the_certainty_loss() -> None:
    from tests.train.test_mdlm import tiny_model

    model = tiny_model()
    batch = collate([([5, 6, 7], [8, 9, 10, EOS_ID]), ([11], [12, 13, EOS_ID, EOS_ID])] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(certainty_loss(model, batch, torch.Generator().manual_seed(s), 2, full_mask_prob=0.5)[0].item()
                       for s in range(4))

    before = eval_loss()
    for step in range(15):
        loss, _ = certainty_loss(model, batch, torch.Generator().manual_seed(100 + step), 2, full_mask_prob=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.5 * before
