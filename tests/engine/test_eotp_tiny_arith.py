"""End-of-Text Prediction on the shipped tiny-arith: it cuts the forwards spent on EOS padding and changes no
answer of the first 30 test problems (never seen in training), with LLaDA's quota and with threshold decoding.
It is not answer-preserving in general (the filled EOS are context for later forwards): on all 500 test problems
it changes 1 answer under llada and 3 under threshold 0.9 (unmask/assets/tiny-arith/learn2pd_filter.md)."""
import pytest

from unmask import LLM, DecodeConfig
from unmask.bench.tasks import get_task
from unmask.models.resolve import bundled_models

pytestmark = pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
N = 30
RULES = {"llada": dict(commit="linear", steps=48), "threshold": dict(commit="threshold", threshold=0.9)}


@pytest.fixture(scope="module")
def runs():
    llm, task = LLM("tiny-arith", device="cpu"), get_task("arith")
    prompts = [task.prompt(e) for e in task.examples("test", N)]
    out = {}
    for name, knobs in RULES.items():
        for eotp in (False, True):
            cfg = DecodeConfig(gen_length=48, block_length=16, eotp=eotp, **knobs)
            out[name, eotp] = llm.generate(prompts, cfg)
    return out


@pytest.mark.parametrize("rule", sorted(RULES))
def test_eotp_changes_no_answer(runs, rule):
    assert [c.token_ids for c in runs[rule, True]] == [c.token_ids for c in runs[rule, False]]


def test_eotp_cuts_the_quota_rules_forwards(runs):
    without, with_ = (sum(c.nfe for c in runs["llada", e]) / N for e in (False, True))
    assert with_ < 0.85 * without          # measured: 37.4 → 27.4 NFE per problem
    assert all(a.nfe <= b.nfe for a, b in zip(runs["llada", True], runs["llada", False]))


def test_eotp_spares_threshold_decoding_the_block_after_an_answer_that_fills_its_block(runs):
    """An answer ending at a block's last position needs its EOS from the next block; EoTP fills it from the
    prediction instead (2 → 1 NFE). The filled context can also cost a forward elsewhere (on 50 problems:
    three rows 2 → 1, two rows one more; 153 → 152 NFE), so the test is on the total."""
    with_, without = runs["threshold", True], runs["threshold", False]
    assert sum(c.nfe for c in with_) <= sum(c.nfe for c in without)
    assert any(a.nfe < b.nfe for a, b in zip(with_, without))
