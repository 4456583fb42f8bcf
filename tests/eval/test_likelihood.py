"""LLaDA's Monte-Carlo likelihood: unbiased for its bound (checked against exact enumeration), CFG, greedy."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from unmask.errors import ConfigError
from unmask.eval.likelihood import MonteCarloLikelihood

MASK, VOCAB = 7, 8
TABLE = torch.sin(torch.arange(VOCAB * VOCAB, dtype=torch.float64).reshape(VOCAB, VOCAB) * 1.7)


def toy_logits(rows):
    """A deterministic bidirectional 'model': each position's logits depend on every token of its row."""
    x = torch.tensor(rows)
    context = TABLE[x].mean(dim=1, keepdim=True)                     # (B, 1, V) from the whole row
    position = torch.cos(torch.arange(x.shape[1], dtype=torch.float64))[None, :, None]
    return 2 * TABLE[x] + 3 * context * position


def exact_bound(prefix, target):
    """E_l E_M[(L/l) Σ_{i∈M} log p(x_i | x_¬M)] by enumerating every mask set of the target."""
    length, total = len(target), 0.0
    for count in range(1, length + 1):
        sets = list(itertools.combinations(range(length), count))
        mean = 0.0
        for chosen in sets:
            row = prefix + [MASK if i in chosen else t for i, t in enumerate(target)]
            logp = toy_logits([row])[0].log_softmax(-1)
            mean += sum(float(logp[len(prefix) + i, target[i]]) for i in chosen) / len(sets)
        total += (length / count) * mean / length
    return total


def test_estimate_converges_to_the_exact_bound():
    prefix, target = [1, 2], [3, 0, 5]
    scorer = MonteCarloLikelihood(toy_logits, MASK, mc_num=1200, batch_size=40, seed=1)
    estimate = scorer.loglikelihood(prefix, target)  # exact −6.97; the estimate's spread here is about 0.03
    assert estimate == pytest.approx(exact_bound(prefix, target), abs=0.12)
    assert estimate < 0


def test_cfg_zero_equals_plain_and_cfg_changes_the_estimate():
    prefix, target = [1, 2], [3, 4]
    plain = MonteCarloLikelihood(toy_logits, MASK, mc_num=8, batch_size=4, seed=0).loglikelihood(prefix, target)
    zero = MonteCarloLikelihood(toy_logits, MASK, mc_num=8, batch_size=4, cfg=0, seed=0).loglikelihood(prefix, target)
    guided = MonteCarloLikelihood(toy_logits, MASK, mc_num=8, batch_size=4, cfg=1.5, seed=0).loglikelihood(prefix,
                                                                                                          target)
    assert plain == zero and not math.isclose(plain, guided)


def test_greedy_check_finds_the_argmax_continuation():
    scorer = MonteCarloLikelihood(toy_logits, MASK, mc_num=4, batch_size=4)
    row = [1, 2, MASK, MASK]
    for _ in range(2):  # replay the greedy pass to find what it produces
        where = [i for i, t in enumerate(row) if t == MASK]
        probs = toy_logits([row])[0][where].softmax(-1)
        conf, tok = probs.max(-1)
        best = int(conf.argmax())
        row[where[best]] = int(tok[best])
    assert scorer.greedy_matches([1, 2], row[2:])
    assert not scorer.greedy_matches([1, 2], [(row[2] + 1) % MASK, row[3]])


@pytest.mark.parametrize("kwargs", [{"mc_num": 10, "batch_size": 4}, {"mc_num": 0}, {"cfg": -1.0}])
def test_bad_knobs_are_refused(kwargs):
    with pytest.raises(ConfigError):
        MonteCarloLikelihood(toy_logits, MASK, **kwargs)


def test_empty_continuation_is_refused():
    with pytest.raises(ConfigError, match="non-empty"):
        MonteCarloLikelihood(toy_logits, MASK, mc_num=4, batch_size=4).loglikelihood([1], [])
