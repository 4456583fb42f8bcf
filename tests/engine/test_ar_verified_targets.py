"""The shipped pair tiny-arith (dLLM) + tiny-arith-ar (verifier) on 50 unseen arith problems: SpecDiff and guided
diffusion keep the verifier's accuracy with far fewer verifier forwards per token than plain AR decoding; APD
spends fewer dLLM forwards than fast-dllm (its accuracy gap to llada is reported, docs/ar_verified.md), and with
its correction token (`apd-correct`) closes that gap at the same cost."""
import pytest
import torch

from tests.arith_runs import decode_test_problems
from unmask import LLM
from unmask.bench.tasks import get_task
from unmask.engine.autoregressive import greedy

N = 50


@pytest.fixture(scope="module")
def setup():
    llm = LLM("tiny-arith", device="cpu", verifier="tiny-arith-ar")
    task = get_task("arith")
    examples = task.examples("test", N)
    prompts = [llm.tokenizer.encode(task.prompt(ex)) for ex in examples]
    with torch.inference_mode():
        plain = greedy(llm.verifier, prompts, task.gen_length)                     # plain greedy AR decoding
    return llm, task, examples, plain


@pytest.mark.parametrize("preset", ["specdiff", "guided-diffusion"])
def test_verified_decoding_keeps_ar_accuracy_with_fewer_ar_forwards_per_token(setup, preset):
    llm, task, examples, plain = setup
    ar_text = [llm.tokenizer.decode([t for t in ids if t not in llm.spec.eos_ids]) for ids, _ in plain]
    ar_accuracy = sum(task.score(ex, text) for ex, text in zip(examples, ar_text)) / N
    ar_per_token = sum(n for _, n in plain) / sum(len(ids) for ids, _ in plain)   # 1.0: one forward a token
    accuracy, out = decode_test_problems(llm, llm.preset_config(preset), N)
    assert [c.text for c in out] == ar_text and accuracy == ar_accuracy >= 0.96
    per_token = sum(c.verifier_nfe for c in out) / sum(len(c.token_ids) + 1 for c in out)   # + the EOS
    assert ar_per_token == 1.0 and per_token < 0.2


def test_apd_needs_fewer_dllm_forwards_than_fast_dllm(setup):
    llm, task, examples, _ = setup
    fast_accuracy, fast = decode_test_problems(llm, llm.preset_config("fast-dllm", block_length=16), N)
    accuracy, out = decode_test_problems(llm, llm.preset_config("apd", seed=0), N)
    assert sum(c.nfe for c in out) < 0.75 * sum(c.nfe for c in fast)
    assert [c.verifier_nfe for c in out] == [c.nfe for c in out]
    assert accuracy >= 0.88 and fast_accuracy >= 0.94
    corrected_accuracy, corrected = decode_test_problems(llm, llm.preset_config("apd-correct", seed=0), N)
    assert sum(c.nfe for c in corrected) < 0.75 * sum(c.nfe for c in fast)
    assert corrected_accuracy >= 0.96 and corrected_accuracy >= accuracy   # llada: 0.986 on the 500 (docs)
