"""AR-verified decoding in the engine (apd, specdiff, guided): outputs against their defining cases, NFE per
model, rows joining mid-decode, and the verifier's load-time checks."""
import json

import pytest
import torch
from torch import nn

from unmask import LLM, DecodeConfig
from unmask.engine.autoregressive import ARModel, greedy
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig
from tiny_models import VOCAB, write_tiny_model

PROMPTS = ["Ann has 23 pens. She buys 45 more. How many pens does she have now?\n",
           "Tom has 17 cups. He loses 5 and doubles them. How many?\n",
           "Eve has 8 toys. She triples them. How many toys now?\n"]
G = 16


def other_token(x):
    """A token ≠ x that is never the mask id (2): x + 1, or 3 instead of 2."""
    y = (x + 1) % VOCAB
    return y + (y == 2) if isinstance(y, torch.Tensor) else (3 if y == 2 else y)


class Echo(nn.Module):
    """A fake causal model: at chunk column j it predicts the chunk's token j + 1 (shift 0), or another token
    (shift 1): it agrees with every draft it reads, or with none."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift
        self.cfg = ArchConfig(vocab_size=VOCAB, d_model=8, n_layers=1, n_heads=1, n_kv_heads=1, ffn_hidden=8,
                              rope_theta=1e4, norm_eps=1e-5, max_positions=256)
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, ids, positions, view=None, logits_at=None):
        following = torch.cat([ids[:, 1:], ids[:, -1:]], 1)
        return nn.functional.one_hot(other_token(following) if self.shift else following, VOCAB).float() * 10


def with_fake_verifier(shift: int) -> LLM:
    llm = LLM("tiny-arith")
    spec = DiffusionSpec(mask_id=2, eos_ids=(1,), logit_shift=1, attention="block_causal:1", context_len=256,
                         autoregressive=True)
    llm.verifier = ARModel(Echo(shift), spec, torch.device("cpu"))
    return llm


@pytest.fixture(scope="module")
def ar_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("ar"), "llada", seed=3, is_causal=True)


@pytest.fixture(scope="module")
def llm(ar_dir):
    return LLM("tiny-arith", verifier=ar_dir)


def ar_greedy_ids(llm: LLM, prompts: list[str]) -> list[list[int]]:
    ids = [llm.tokenizer.encode(p) for p in prompts]
    return [[t for t in row if t not in llm.spec.eos_ids] for row, _ in greedy(llm.verifier, ids, G)]


@pytest.mark.parametrize("config", [
    DecodeConfig(gen_length=G, schedule="full", verify="specdiff", verify_lookahead=4),
    DecodeConfig(gen_length=G, block_length=8, verify="guided", cache="prefix"),
    DecodeConfig(gen_length=G, block_length=8, verify="guided", cache="none", verify_lookahead=3),
])
def test_greedy_verification_reproduces_the_ar_models_greedy_output(llm, config):
    """Greedy speculative decoding is lossless: whatever the dLLM drafts, the text is the verifier's own."""
    out = llm.generate(PROMPTS, config)
    assert [c.token_ids for c in out] == ar_greedy_ids(llm, PROMPTS)
    for c in out:
        assert c.nfe == c.verifier_nfe >= 1                       # one dLLM and one verifier forward per step
        assert c.nfe <= len(c.token_ids) + 1


def test_a_verifier_that_agrees_with_everything_returns_the_dllms_one_forward_draft():
    llm = with_fake_verifier(shift=0)
    one_shot = llm.generate(PROMPTS, DecodeConfig(gen_length=G, steps=1, block_length=G))
    for config in (DecodeConfig(gen_length=G, schedule="full", verify="apd", apd_mixture_weight=0.0),
                   DecodeConfig(gen_length=G, schedule="full", verify="specdiff", verify_lookahead=G)):
        out = llm.generate(PROMPTS, config)
        assert [c.token_ids for c in out] == [c.token_ids for c in one_shot]
        assert [(c.nfe, c.verifier_nfe) for c in out] == [(1, 1)] * len(PROMPTS)


def test_a_verifier_that_agrees_with_nothing_leaves_apd_one_dllm_token_per_forward():
    llm = with_fake_verifier(shift=1)
    left_to_right = llm.generate(PROMPTS, DecodeConfig(gen_length=G, steps=G, block_length=1))
    out = llm.generate(PROMPTS, DecodeConfig(gen_length=G, schedule="full", verify="apd", apd_mixture_weight=0.0))
    assert [c.token_ids for c in out] == [c.token_ids for c in left_to_right]
    assert [c.nfe for c in out] == [c.nfe for c in left_to_right] == [c.verifier_nfe for c in out]


def test_a_verifier_that_agrees_with_nothing_makes_specdiff_write_the_verifiers_tokens():
    """Each step the fake verifier rejects the draft's first token x and writes its own, other_token(x)."""
    llm = with_fake_verifier(shift=1)
    out = llm.generate(PROMPTS[:1], DecodeConfig(gen_length=G, schedule="full", verify="specdiff",
                                                 verify_lookahead=4, stop_at_eos=False))[0]
    assert out.nfe == out.verifier_nfe == G                      # one token per step
    prompt, tokens = llm.tokenizer.encode(PROMPTS[0]), []
    for t in range(G):                                           # the same decode, by hand
        logits = llm.logits([prompt + tokens + [llm.spec.mask_id] * (G - t)])[0, len(prompt) + t].clone()
        logits[llm.spec.mask_id] = float("-inf")
        tokens.append(other_token(int(logits.argmax())))
    eos = tokens.index(1) if 1 in tokens else G
    assert out.token_ids == tokens[:eos]


def test_the_verifiers_computed_positions_are_counted_per_request():
    """Completion.verifier_computed = positions × verifier layers (1 here) each row read, by hand."""
    agreeing, rejecting = with_fake_verifier(shift=0), with_fake_verifier(shift=1)
    prompts = [len(agreeing.tokenizer.encode(p)) for p in PROMPTS]
    out = agreeing.generate(PROMPTS, DecodeConfig(gen_length=G, schedule="full", verify="apd"))
    assert [c.verifier_computed for c in out] == [P + G for P in prompts]       # one read: prompt + draft
    config = DecodeConfig(gen_length=G, schedule="full", verify="specdiff", verify_lookahead=4, stop_at_eos=False)
    out = rejecting.generate(PROMPTS[:1], config)[0]
    # step 0 reads the prompt and 4 drafted tokens; each later step t re-reads t - 1 and drafts min(4, G - t)
    assert out.verifier_computed == prompts[0] + 4 + sum(min(4, G - t) + 1 for t in range(1, G))
    assert out.computed > 0 and out.verifier_nfe == G


def test_rows_get_the_same_tokens_alone_in_a_batch_and_joining_late(llm):
    config = DecodeConfig(gen_length=G, schedule="full", verify="apd", verify_lookahead=6, temperature=0.5,
                          seed=11)
    batch = llm.generate(PROMPTS, config)
    alone = [llm.generate([p], config)[0] for p in PROMPTS]
    assert [c.token_ids for c in batch] == [c.token_ids for c in alone]
    assert [c.verifier_nfe for c in batch] == [c.verifier_nfe for c in alone]
    engine = llm.make_engine()
    ids = [llm.tokenizer.encode(p) for p in PROMPTS]
    first = engine.add_request(ids[0], config)
    done = {o.request_id: o.completion for o in engine.step() if o.finished}
    late = engine.add_request(ids[2], config)
    while engine.has_unfinished():
        done.update((o.request_id, o.completion) for o in engine.step() if o.finished)
    assert done[first].token_ids == alone[0].token_ids and done[late].token_ids == alone[2].token_ids


def test_verifier_errors_are_clear(ar_dir, llada_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs a verifier model"):
        LLM("tiny-arith").generate(PROMPTS[:1], DecodeConfig(gen_length=G, verify="apd"))
    with pytest.raises(ConfigError, match="autoregressive .* model, not a diffusion model"):
        LLM(ar_dir)
    with pytest.raises(ConfigError, match="not an autoregressive model"):
        LLM("tiny-arith", verifier=llada_dir)
    other = write_tiny_model(tmp_path / "other", "llada", is_causal=True)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]                 # same size, different ids
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ConfigError, match="differs from the model's"):
        LLM("tiny-arith", verifier=other)
