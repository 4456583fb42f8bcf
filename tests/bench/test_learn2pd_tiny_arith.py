"""The Learn2PD filter shipped beside tiny-arith: on the first 50 test problems (never seen by the model or the
filter) `commit=learned` at its validated threshold needs fewer forwards than threshold 0.9 on the same
schedule (blocks of 16, no cache) without losing a problem; the filter is found beside the model and by name."""
import pytest

from tests.arith_runs import accuracy_and_nfe
from unmask import LLM, DecodeConfig
from unmask.errors import ConfigError
from unmask.models.resolve import ASSETS, bundled_models

FILTER = ASSETS / "tiny-arith" / "learn2pd_filter.safetensors"
pytestmark = pytest.mark.skipif("tiny-arith" not in bundled_models() or not FILTER.is_file(),
                                reason="tiny-arith or its Learn2PD filter is not built")
N = 50
RECIPES = {
    "threshold": DecodeConfig(gen_length=48, block_length=16, commit="threshold", threshold=0.9, confidence_fp64=True),
    "learned": DecodeConfig(gen_length=48, block_length=16, commit="learned"),
}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[float, float]]:
    llm = LLM("tiny-arith", device="cpu")
    return {name: accuracy_and_nfe(llm, cfg, N) for name, cfg in RECIPES.items()}


def test_learned_commit_needs_fewer_forwards_at_equal_accuracy(results):
    (th_acc, th_nfe), (le_acc, le_nfe) = results["threshold"], results["learned"]
    assert le_acc >= th_acc
    assert le_nfe < th_nfe


def test_the_filter_is_found_by_model_name_and_a_model_without_one_is_refused():
    llm = LLM("tiny-arith", device="cpu")
    prompt = ["Ann has 23 pens. She buys 45 more. How many pens now?\n"]
    mine = llm.generate(prompt, DecodeConfig(gen_length=48, block_length=16, commit="learned"))
    named = llm.generate(prompt, DecodeConfig(gen_length=48, block_length=16, commit="learned",
                                              learned_filter="tiny-arith"))
    assert mine[0].token_ids == named[0].token_ids and mine[0].text.endswith("68")
    with pytest.raises(ConfigError, match="learn2pd_filter"):
        llm.generate(prompt, DecodeConfig(gen_length=48, block_length=16, commit="learned",
                                          learned_filter="/nonexistent/filter"))
    if "tiny-arith-bd" in bundled_models():
        with pytest.raises(ConfigError, match="train-filter"):
            LLM("tiny-arith-bd", device="cpu").generate(prompt, DecodeConfig(gen_length=48, block_length=16,
                                                                             commit="learned", cache="none"))
