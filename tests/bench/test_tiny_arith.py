"""The shipped tiny-arith model: a real baseline, threshold decoding keeps it with far fewer NFE, and
committing many tokens per step loses accuracy (the parallel-decoding curse). Runs in CI (~30 s on 2 cores)."""
import pytest

from tests.arith_runs import accuracy_and_nfe
from unmask import LLM, DecodeConfig
from unmask.models.resolve import bundled_models

pytestmark = pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
N = 50  # the first 50 problems of the arith test split (never seen in training)
RECIPES = {
    "llada": DecodeConfig.preset("llada", gen_length=48, steps=48, block_length=16),
    "k=8": DecodeConfig.preset("llada", gen_length=48, steps=6, block_length=16),
    "one-shot": DecodeConfig.preset("llada", gen_length=48, steps=1, block_length=48),
    "fast-dllm": DecodeConfig.preset("fast-dllm", gen_length=48, block_length=16, cache="none"),
}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[float, float]]:
    """{recipe: (accuracy, mean NFE)}."""
    llm = LLM("tiny-arith", device="cpu")
    return {name: accuracy_and_nfe(llm, cfg, N) for name, cfg in RECIPES.items()}


def test_one_token_per_step_scores_at_least_90_percent(results):
    assert results["llada"][0] >= 0.9


def test_threshold_needs_far_fewer_nfe_at_a_small_accuracy_cost(results):
    (base_acc, base_nfe), (fast_acc, fast_nfe) = results["llada"], results["fast-dllm"]
    assert fast_nfe < 0.25 * base_nfe
    assert fast_acc >= base_acc - 0.06


def test_committing_many_tokens_per_step_loses_accuracy(results):
    base_acc = results["llada"][0]
    assert results["k=8"][1] <= 6 and results["one-shot"][1] == 1
    assert results["k=8"][0] < base_acc - 0.1
    assert results["one-shot"][0] < results["k=8"][0]
