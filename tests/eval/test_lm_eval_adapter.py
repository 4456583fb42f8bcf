"""The lm-evaluation-harness adapter, run through `lm_eval.simple_evaluate` on a local task set on tiny-arith."""
from __future__ import annotations

import pytest

lm_eval = pytest.importorskip("lm_eval")

from unmask.errors import ConfigError  # noqa: E402
from unmask.eval.lm_eval_adapter import UnmaskLM, cut_at_stops, decode_overrides  # noqa: E402
from unmask.models.resolve import bundled_models  # noqa: E402

from .lm_eval_tasks import TASKS, write_task_dir  # noqa: E402

needs_model = pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
N = 4


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import os

    from lm_eval.tasks import TaskManager

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    root = write_task_dir(tmp_path_factory.mktemp("lm_eval_tasks"), N)
    args = {"pretrained": "tiny-arith", "preset": "fast-dllm", "mc_num": 32, "mc_batch_size": 32, "greedy_check": False,
            "split_whitespace": False, "threshold": 0.9}
    return lm_eval.simple_evaluate(model="unmask", model_args=args, tasks=list(TASKS),
                                   task_manager=TaskManager(include_path=str(root), include_defaults=False), limit=N, batch_size=N,
                                   log_samples=True)


@needs_model
def test_generate_until_through_lm_eval(results):
    gen = results["results"]["unmask_arith_gen"]
    assert gen["exact_match,answer"] >= 0.75  # fast-dllm gets ~97% of arith problems right
    texts = [s["resps"][0][0] for s in results["samples"]["unmask_arith_gen"]]
    assert all("####" in t for t in texts)


@needs_model
def test_loglikelihood_through_lm_eval_prefers_the_right_answer(results):
    assert results["results"]["unmask_arith_choice"]["acc,none"] == 1.0
    for sample in results["samples"]["unmask_arith_choice"]:
        (right, _), (wrong, _) = [r[0] for r in sample["resps"]]
        assert wrong < right < 0


@needs_model
def test_loglikelihood_rolling_through_lm_eval(results):
    ppl = results["results"]["unmask_arith_rolling"]["word_perplexity,none"]
    assert ppl > 1 and all(s["resps"][0][0] < 0 for s in results["samples"]["unmask_arith_rolling"])


class Request:
    def __init__(self, *args):
        self.args = args


@needs_model
def test_generate_until_honours_stop_strings_and_batches():
    lm = UnmaskLM(pretrained="tiny-arith", preset="fast-dllm", batch_size=2)
    prompts = ["Ann has 23 pens. She buys 45 more. How many pens does she have now?\n",
               "Bob has 40 cards. He loses 5. How many cards now?\n", "Sam has 3 cups. He doubles them. How many now?\n"]
    full = lm.generate_until([Request(p, {"until": []}) for p in prompts])
    cut = lm.generate_until([Request(p, {"until": ["=", "####"]}) for p in prompts])
    assert all("=" in f for f in full)
    assert cut == [f[:f.index("=")] for f in full] and all("=" not in c for c in cut)


def test_cut_at_stops_takes_the_earliest():
    assert cut_at_stops("a=b#c", ["#", "="]) == "a"
    assert cut_at_stops("abc", ["x", ""]) == "abc"


def test_unknown_model_args_are_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match="unknown model_args bogus"):
        decode_overrides({"bogus": 1})
    assert decode_overrides({"cache": None, "threshold": 0.8}) == {"cache": "none", "threshold": 0.8}
