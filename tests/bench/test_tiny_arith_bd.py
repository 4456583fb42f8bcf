"""The shipped block-diffusion model tiny-arith-bd (BD3-LM, blocks of 16): it meets its accuracy target one
token per step, and the exact block-causal cache gives the same tokens as no cache for less compute."""
import pytest

from tests.arith_runs import decode_test_problems
from unmask.bench.tasks import get_task
from unmask import LLM, DecodeConfig
from unmask.errors import ConfigError
from unmask.models.resolve import bundled_models

pytestmark = pytest.mark.skipif("tiny-arith-bd" not in bundled_models(), reason="tiny-arith-bd asset not built")
N = 50  # the first 50 problems of the arith test split (never seen in training)
ONE_PER_STEP = DecodeConfig(gen_length=48, steps=48, block_length=16)


@pytest.fixture(scope="module")
def run():
    llm = LLM("tiny-arith-bd", device="cpu")
    return llm, lambda cfg: decode_test_problems(llm, cfg, N)


def test_one_token_per_step_scores_at_least_90_percent_with_the_exact_cache(run):
    llm, decode = run
    assert llm.spec.attention == "block_causal:16"
    cached_acc, cached = decode(ONE_PER_STEP.replace(cache="block-causal"))
    assert cached_acc >= 0.9


def test_the_exact_cache_gives_the_tokens_of_no_cache_for_less_compute(run):
    llm, _ = run
    prompts = [get_task("arith").prompt(e) for e in get_task("arith").examples("test", 8)]
    plain = llm.generate(prompts, ONE_PER_STEP)
    cached = llm.generate(prompts, ONE_PER_STEP.replace(cache="block-causal"))
    assert [c.token_ids for c in cached] == [c.token_ids for c in plain]
    assert sum(c.computed for c in cached) < 0.4 * sum(c.computed for c in plain)


def test_its_own_preset_is_the_exact_cache():
    llm = LLM("tiny-arith-bd", device="cpu")
    cfg = llm.default_config()
    assert (cfg.cache, cfg.block_length, cfg.gen_length) == ("block-causal", 16, 48)
    with pytest.raises(ConfigError, match="block_length=16"):
        llm.generate(["What is 1 + 2?\n"], DecodeConfig(gen_length=48, block_length=48))


def test_bench_skips_configs_the_model_cannot_decode(capsys):
    from unmask.bench.command import decodable

    llm = LLM("tiny-arith-bd", device="cpu")
    kept = decodable(llm, [("blocks", ONE_PER_STEP), ("one-shot", DecodeConfig(gen_length=48, block_length=48)),
                           ("dual", ONE_PER_STEP.replace(cache="dual"))])
    assert [label for label, _ in kept] == ["blocks"]
    err = capsys.readouterr().err
    assert "skipping one-shot" in err and "skipping dual" in err
