"""Engine behaviour on tiny random models: determinism, batch invariance, early stop, limits."""
import pytest
import torch

from unmask import LLM, DecodeConfig
from unmask.errors import RequestError

PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]


@pytest.fixture(scope="module", params=["llada", "dream"])
def llm(request, llada_dir, dream_dir):
    return LLM(str(llada_dir if request.param == "llada" else dream_dir))


CONFIGS = [
    DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=8),
    DecodeConfig.preset("llada", gen_length=16, steps=8, block_length=8, temperature=0.7, seed=3),
    DecodeConfig.preset("dream", gen_length=16, steps=8),
    DecodeConfig.preset("fast-dllm", gen_length=16, block_length=8, threshold=0.3),
    DecodeConfig.preset("fast-dllm-factor", gen_length=16, block_length=8),
    DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=8, alg="random", seed=1),
    DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=16, temperature=1.0, top_p=0.9, top_k=20,
                        seed=11),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.commit}-{c.alg}-T{c.temperature}")
def test_batch_matches_solo(llm, cfg):
    batch = llm.generate(PROMPTS, cfg)
    for prompt, together in zip(PROMPTS, batch):
        alone = llm.generate([prompt], cfg)[0]
        assert together.token_ids == alone.token_ids
        assert together.nfe == alone.nfe


def test_without_a_seed_each_request_draws_its_own_and_reports_it(llm):
    """No seed: copies of one prompt give independent samples; each Completion's seed reproduces its sample."""
    cfg = DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=16, temperature=2.0,
                              stop_at_eos=False)
    assert cfg.seed is None
    out = llm.generate([PROMPTS[0]] * 4, cfg)
    assert len({c.seed for c in out}) == 4
    assert len({tuple(c.token_ids) for c in out}) > 1
    again = llm.generate([PROMPTS[0]], cfg.replace(seed=out[2].seed))[0]
    assert again.token_ids == out[2].token_ids and again.seed == out[2].seed
    seeded = llm.generate([PROMPTS[0]] * 3, cfg.replace(seed=5))
    assert len({tuple(c.token_ids) for c in seeded}) == 1 and {c.seed for c in seeded} == {5}


def test_same_seed_same_tokens_other_seed_differs(llm):
    cfg = DecodeConfig.preset("llada", gen_length=16, steps=16, block_length=16, temperature=2.0, seed=7,
                              stop_at_eos=False)
    a, b = llm.generate(PROMPTS, cfg), llm.generate(PROMPTS, cfg)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    c = llm.generate(PROMPTS, cfg.replace(seed=8))
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


@pytest.mark.parametrize("cfg", CONFIGS[:5], ids=lambda c: c.commit)
def test_early_stop_keeps_tokens_before_first_eos(llm, cfg):
    stopped = llm.generate(PROMPTS, cfg)
    full = llm.generate(PROMPTS, cfg.replace(stop_at_eos=False))
    for s, f in zip(stopped, full):
        assert s.token_ids == f.token_ids
        assert s.nfe <= f.nfe
        assert s.finish_reason == f.finish_reason


def test_quota_nfe_equals_steps(llm):
    cfg = DecodeConfig.preset("llada", gen_length=16, steps=8, block_length=8, stop_at_eos=False)
    assert all(c.nfe == 8 for c in llm.generate(PROMPTS, cfg))


def test_threshold_uses_fewer_steps_than_top1_when_lowered(llm):
    cfg = DecodeConfig.preset("fast-dllm", gen_length=16, block_length=8, stop_at_eos=False)
    one = llm.generate(PROMPTS, cfg.replace(threshold=1.01))
    low = llm.generate(PROMPTS, cfg.replace(threshold=1e-9))
    assert all(c.nfe == 16 for c in one)
    assert all(c.nfe == 2 for c in low)  # every candidate passes: one step per block


def test_never_commits_mask_id(llm):
    out = llm.generate(PROMPTS, DecodeConfig.preset("fast-dllm", gen_length=16, block_length=8, threshold=0.01,
                                                     stop_at_eos=False))
    assert all(llm.spec.mask_id not in c.token_ids for c in out)


def test_oversized_request_is_refused(llm):
    with pytest.raises(RequestError, match="context length"):
        llm.generate([[5] * 250], DecodeConfig.preset("llada", gen_length=32, steps=32))


@pytest.mark.parametrize("bad, words", [([], "non-empty"), ([[]], "empty"), ([[5, 9999]], "outside the vocabulary"),
                                        (["a", [1]], "mix")])
def test_bad_prompts(llm, bad, words):
    with pytest.raises(RequestError, match=words):
        llm.generate(bad)


def test_text_prompts_and_completion_fields(llm):
    out = llm.generate(["Ann has 3 pens."], DecodeConfig.preset("llada", gen_length=8, steps=8, block_length=8))[0]
    assert isinstance(out.text, str) and out.seconds > 0 and out.nfe >= 1


def test_logits_shape_and_shift(llm):
    ids = [[5, 6, 7, 8], [9, 10, 11, 12]]
    logits = llm.logits(ids)
    assert logits.shape == (2, 4, llm.model.cfg.vocab_size)
    x = torch.tensor(ids)
    raw = llm.model(x, torch.arange(4).expand(2, 4))
    if llm.spec.logit_shift:
        assert torch.equal(logits[:, 1:], raw[:, :-1]) and torch.equal(logits[:, 0], raw[:, 0])
    else:
        assert torch.equal(logits, raw)


def test_checkpoint_decode_defaults(tmp_path):
    import json
    import shutil

    from tiny_models import write_tiny_model
    from unmask.errors import CheckpointError

    path = write_tiny_model(tmp_path / "m")
    (path / "unmask_decode.json").write_text(json.dumps({"gen_length": 16, "steps": 16, "block_length": 8}))
    llm = LLM(str(path))
    assert llm.default_config().gen_length == 16
    assert llm.generate([[5, 6]])[0].nfe <= 16
    bad = [(json.dumps({"colour": 1}), "unmask_decode.json.*colour"),
           ("{", "unmask_decode.json is not valid JSON"),
           (json.dumps([{"gen_length": 16}]), "unmask_decode.json must be a JSON object.*list"),
           (json.dumps({"gen_length": "16"}), "unmask_decode.json.*gen_length"),
           (json.dumps({"temperature": float("nan")}), "unmask_decode.json.*temperature")]
    for text, words in bad:
        (path / "unmask_decode.json").write_text(text)
        with pytest.raises(CheckpointError, match=words):
            LLM(str(path))
    (path / "unmask_decode.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        LLM(str(path))
    shutil.rmtree(path)


@pytest.mark.parametrize("call, kind, words", [
    (lambda llm: llm.generate(["x"], {"gen_length": 48}), "ConfigError", "config must be a DecodeConfig, a preset"),
    (lambda llm: llm.generate(["x"], "no-such-preset"), "ConfigError", "unknown preset 'no-such-preset'"),
    (lambda llm: llm.generate([["a", "b"]]), "RequestError", "token ids must be ints, got 'a'"),
    (lambda llm: llm.generate([[5, 6.7]]), "RequestError", "token ids must be ints, got 6.7"),
    (lambda llm: llm.generate([[5, True]]), "RequestError", "token ids must be ints, got True"),
    (lambda llm: llm.generate([[5, llm.spec.mask_id]]), "RequestError", "mask token id"),
    (lambda llm: llm.logits([[5] * 300]), "RequestError", "context length"),
    (lambda llm: LLM(None), "ConfigError", "model"),
    (lambda llm: LLM(123), "ConfigError", "model"),
])
def test_api_misuse_names_the_problem(llm, call, kind, words):
    with pytest.raises(Exception) as err:
        call(llm)
    assert type(err.value).__name__ == kind and words in str(err.value), (type(err.value), str(err.value))


def test_generate_accepts_none_and_preset_names(llm):
    assert llm.generate(["Ann has 3 pens."], None)[0].nfe >= 1
    arith = LLM("tiny-arith", device="cpu")   # its unmask_decode.json fits the preset to its context
    assert arith.generate(["Ann has 3 pens.\n"], "fast-dllm")[0].nfe >= 1


def test_non_finite_logits_fail_the_request_with_a_clear_error(llada_dir):
    """One NaN row in the output head: every request fails with an error naming the cause, not garbage ids."""
    from unmask.engine.api import FinishReason
    from unmask.errors import GenerationError

    llm = LLM(str(llada_dir))
    with torch.no_grad():
        llm.model.lm_head.weight[7] = float("nan")
    with pytest.raises(GenerationError, match="non-finite logits"):
        llm.generate(["Ann has 3 pens."], DecodeConfig.preset("llada", gen_length=8, steps=8, block_length=8))
    engine = llm.make_engine()
    rid = engine.add_request([5, 6], DecodeConfig.preset("llada", gen_length=8, steps=8, block_length=8))
    outputs = engine.step()
    assert [o.request_id for o in outputs] == [rid] and outputs[0].finished
    assert outputs[0].completion.finish_reason == FinishReason.ERROR.value and "NaN" in outputs[0].error
    assert not engine.has_unfinished() and engine.stats.failed == 1
