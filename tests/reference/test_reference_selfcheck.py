"""Fast sanity checks of the reference samplers (tests/reference/samplers.py) and checkpoint helpers
(tests/checkpoints.py). They check the oracles' own invariants; they do not touch unmask."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests import checkpoints as C
from tests.reference import samplers as S

MASK = 31
VOCAB = 32


def toy_model(vocab: int = VOCAB, mask_id: int = MASK, seed: int = 0):
    """A cheap deterministic logits function of the whole sequence (no ties, mask token never predicted)."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab, 16, generator=g)
    pos = torch.randn(256, 16, generator=g)
    out = torch.randn(16, vocab, generator=g) * 2.0
    bias = torch.zeros(vocab)
    bias[mask_id] = -1e4

    def fn(x: torch.Tensor) -> torch.Tensor:
        h = emb[x] + pos[: x.shape[1]]
        return torch.tanh(h + h.mean(dim=1, keepdim=True)) @ out + bias

    return fn


def prompt_ids(batch: int = 2, length: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, MASK, (batch, length), generator=torch.Generator().manual_seed(seed))


def commits(history: list, start: torch.Tensor) -> list[torch.Tensor]:
    """Per step, the (B,) number of positions that stopped being MASK."""
    out, prev = [], start
    for x in history:
        out.append(((prev == MASK) & (x != MASK)).sum(dim=1))
        prev = x
    return out


def initial(prompt: torch.Tensor, gen: int) -> torch.Tensor:
    return torch.cat([prompt, torch.full((prompt.shape[0], gen), MASK)], dim=1)


# ------------------------------------------------------------------------------------------------ LLaDA

def test_quota_schedules_agree():
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, :10] = True
    mask[1, :3] = True
    q = S.llada_num_transfer_tokens(mask, 4)
    assert q.tolist() == [[3, 3, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert torch.equal(S.fastdllm_num_transfer_tokens(mask, 4), q)


def test_llada_fills_every_mask_with_exact_quota_inside_block():
    fn, prompt = toy_model(), prompt_ids()
    hist: list = []
    x = S.llada_generate(fn, prompt, steps=6, gen_length=12, block_length=4, mask_id=MASK, history=hist)
    assert x.shape == (2, 17) and torch.equal(x[:, :5], prompt) and not (x == MASK).any()
    assert len(hist) == 6  # fixed step count: 3 blocks x 2 steps
    assert [c.tolist() for c in commits(hist, initial(prompt, 12))] == [[2, 2]] * 6  # 4 masks / 2 steps
    for step, x_step in enumerate(hist):
        start = 5 + (step // 2) * 4
        end = start + 4
        assert not (x_step[:, :start] == MASK).any()
        assert (x_step[:, end:] == MASK).all()  # nothing committed beyond the current block
        if step % 2 == 1:
            assert not (x_step[:, start:end] == MASK).any()


def test_llada_zero_quota_steps_still_run():
    calls = []
    fn = toy_model()

    def counting(x):
        calls.append(1)
        return fn(x)

    hist: list = []
    S.llada_generate(counting, prompt_ids(), steps=8, gen_length=6, block_length=6, mask_id=MASK, history=hist)
    assert len(calls) == 8
    assert [c.tolist() for c in commits(hist, initial(prompt_ids(), 6))] == [[1, 1]] * 6 + [[0, 0]] * 2


def test_llada_sampling_uses_generator_like_global_rng():
    fn, prompt = toy_model(), prompt_ids()
    kw = dict(steps=6, gen_length=6, block_length=3, temperature=0.8, mask_id=MASK)
    a = S.llada_generate(fn, prompt, generator=torch.Generator().manual_seed(3), **kw)
    b = S.llada_generate(fn, prompt, generator=torch.Generator().manual_seed(3), **kw)
    torch.manual_seed(3)
    c = S.llada_generate(fn, prompt, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    r = S.llada_generate(fn, prompt, remasking="random", generator=torch.Generator().manual_seed(4), **kw)
    assert not (r == MASK).any()


def test_llada_cfg_and_eos_options_run():
    fn, prompt = toy_model(), prompt_ids()
    out = S.llada_generate(fn, prompt, 4, 8, 4, mask_id=MASK, cfg_scale=1.0, logits_eos_inf=True, eos_id=3)
    assert not (out[:, 5:] == 3).any() and not (out == MASK).any()
    out = S.llada_generate(fn, prompt, 4, 8, 4, mask_id=MASK, confidence_eos_eot_inf=True, eos_id=3, eot_id=4)
    assert not (out == MASK).any()


# ------------------------------------------------------------------------------------------------ Fast-dLLM

def test_fastdllm_threshold_above_one_commits_one_per_step():
    hist: list = []
    x, nfe = S.fastdllm_generate(toy_model(), prompt_ids(), steps=2, gen_length=8, block_length=4, mask_id=MASK,
                                 threshold=1.01, history=hist, return_nfe=True)
    assert nfe == 8 and not (x == MASK).any()
    assert all(c.tolist() == [1, 1] for c in commits(hist, initial(prompt_ids(), 8)))


def test_fastdllm_threshold_zero_fills_a_block_per_step():
    x, nfe = S.fastdllm_generate(toy_model(), prompt_ids(), steps=2, gen_length=8, block_length=4, mask_id=MASK,
                                 threshold=0.0, return_nfe=True)
    assert nfe == 2 and not (x == MASK).any()


def test_fastdllm_quota_path_matches_llada_and_stops_when_block_full():
    fn, prompt = toy_model(), prompt_ids()
    ref = S.llada_generate(fn, prompt, 8, 8, 4, mask_id=MASK)
    x, nfe = S.fastdllm_generate(fn, prompt, 8, 8, 4, mask_id=MASK, return_nfe=True)
    assert torch.equal(x, ref) and nfe == 8
    # steps_per_block (8) > block_length (4): LLaDA spends 8 forwards per block, Fast-dLLM stops after 4
    ref = S.llada_generate(fn, prompt, 16, 8, 4, mask_id=MASK)
    x, nfe = S.fastdllm_generate(fn, prompt, 16, 8, 4, mask_id=MASK, return_nfe=True)
    assert torch.equal(x, ref) and nfe == 8


def _logits_with_confidences(conf: list[float], vocab: int = 16) -> torch.Tensor:
    """(1, n, vocab) logits whose argmax (token 0) has softmax probability conf[i] at position i."""
    rows = []
    for c in conf:
        a = math.log(c * (vocab - 1) / (1 - c))
        row = torch.zeros(vocab, dtype=torch.float64)
        row[0] = a
        rows.append(row)
    return torch.stack(rows).unsqueeze(0)


@pytest.mark.parametrize("conf, expected", [
    ([0.99, 0.2, 0.1, 0.05], 1),          # rank 1 needs >= 1 - 1/3
    ([0.99, 0.9, 0.85, 0.1, 0.05], 3),    # ranks 1, 2 pass (0.667, 0.75); rank 3 (0.8) fails
    ([0.99, 0.9, 0.1], 3),                # first failure at the LAST rank -> all committed (upstream quirk)
    ([0.3], 1),
])
def test_fastdllm_factor_rule(conf, expected):
    logits = _logits_with_confidences(conf)
    n = len(conf)
    mask_index = torch.ones(1, n, dtype=torch.bool)
    x = torch.full((1, n), MASK)
    _, transfer = S.fastdllm_transfer_index_dynamic(logits, 0.0, "low_confidence", mask_index, x, factor=1.0)
    assert int(transfer.sum()) == expected
    assert transfer[0, :expected].all()  # the most confident ones (conf is sorted descending)


def test_fastdllm_threshold_rule_always_commits_argmax_and_skips_full_rows():
    logits = torch.cat([_logits_with_confidences([0.5, 0.6, 0.95]), _logits_with_confidences([0.5, 0.6, 0.95])])
    mask_index = torch.tensor([[True, True, True], [False, False, False]])
    x = torch.full((2, 3), MASK)
    _, transfer = S.fastdllm_transfer_index(logits, 0.0, "low_confidence", mask_index, x, None, threshold=0.99)
    assert transfer.tolist() == [[False, False, True], [False, False, False]]
    _, transfer = S.fastdllm_transfer_index(logits, 0.0, "low_confidence", mask_index, x, None, threshold=0.55)
    assert transfer.tolist() == [[False, True, True], [False, False, False]]


# ------------------------------------------------------------------------------------------------ Dream

def test_dream_applies_the_logit_shift():
    k = 7

    def fn(x: torch.Tensor) -> torch.Tensor:  # the model's output at position j predicts token j % k
        logits = torch.zeros(x.shape[0], x.shape[1], VOCAB)
        idx = torch.arange(x.shape[1]) % k
        logits[:, torch.arange(x.shape[1]), idx] = 5.0
        return logits

    prompt = prompt_ids()
    for alg in ("entropy", "maskgit_plus", "topk_margin", "origin"):
        x = S.dream_generate(fn, prompt, 10, 10, alg=alg, mask_id=MASK)
        want = torch.tensor([(i - 1) % k for i in range(5, 15)])
        assert torch.equal(x[0, 5:], want), alg
    assert torch.equal(S.dream_shift_logits(torch.arange(4.).view(1, 4, 1)).flatten(), torch.tensor([0., 0, 1, 2]))


def test_dream_timestep_quota_has_zero_steps():
    fn, prompt = toy_model(), prompt_ids()
    hist: list = []
    x = S.dream_generate(fn, prompt, gen_length=8, steps=8, mask_id=MASK, history=hist)
    assert not (x == MASK).any() and len(hist) == 8
    got = [c.tolist() for c in commits(hist, initial(prompt, 8))]
    ts = torch.linspace(1, 1e-3, 9)
    remaining, want = 8, []
    for i in range(8):
        n = int(torch.tensor(remaining, dtype=torch.float32) * (1 - ts[i + 1] / ts[i])) if i < 7 else remaining
        want.append([n, n])
        remaining -= n
    assert got == want
    assert [0, 0] in got  # int() flooring wastes steps


def test_dream_sampling_uses_generator_like_global_rng():
    fn, prompt = toy_model(), prompt_ids()
    for kw in (dict(alg="entropy", temperature=0.7, top_p=0.9), dict(alg="maskgit_plus", temperature=1.0, top_k=5),
               dict(alg="entropy", temperature=0.5, alg_temp=0.3), dict(alg="origin", temperature=0.8)):
        a = S.dream_generate(fn, prompt, 8, 4, mask_id=MASK, generator=torch.Generator().manual_seed(9), **kw)
        torch.manual_seed(9)
        b = S.dream_generate(fn, prompt, 8, 4, mask_id=MASK, **kw)
        assert torch.equal(a, b), kw
        assert not (a == MASK).any()


# ------------------------------------------------------------------------------------------------ checkpoints

def test_llada_checkpoint_layout(tmp_path):
    path = C.write_llada_checkpoint(tmp_path / "llada", n_kv_heads=2)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["LLaDAModelLM"] and cfg["model_type"] == "llada"
    assert (cfg["mask_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (63, 62, 62)
    assert cfg["n_kv_heads"] == 2 and cfg["embedding_size"] == cfg["vocab_size"] == 64
    tensors = load_file(str(path / "model.safetensors"))
    want = C.llada_tensor_shapes(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                 mlp_hidden_size=128, weight_tying=False)
    assert {n: tuple(t.shape) for n, t in tensors.items()} == want
    assert want["model.transformer.blocks.1.k_proj.weight"] == (32, 64)
    norm = tensors["model.transformer.blocks.0.attn_norm.weight"]
    assert not torch.allclose(norm, torch.ones_like(norm)) and (norm - 1).abs().max() < 0.6
    tied = C.write_llada_checkpoint(tmp_path / "tied", weight_tying=True)
    assert "model.transformer.ff_out.weight" not in load_file(str(tied / "model.safetensors"))


def test_dream_checkpoint_layout(tmp_path):
    path = C.write_dream_checkpoint(tmp_path / "dream", dtype=torch.bfloat16)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["DreamModel"] and cfg["model_type"] == "Dream"
    assert (cfg["mask_token_id"], cfg["eos_token_id"], cfg["pad_token_id"], cfg["bos_token_id"]) == (63, 62, 62, 62)
    tensors = load_file(str(path / "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    want = C.dream_tensor_shapes(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=False)
    assert {n: tuple(t.shape) for n, t in tensors.items()} == want
    assert want["model.layers.0.self_attn.k_proj.bias"] == (32,) and "lm_head.weight" in want


@pytest.mark.parametrize("writer", [C.write_llada_checkpoint, C.write_dream_checkpoint])
def test_tokenizer_and_chat_template(tmp_path, writer):
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from tokenizers import Tokenizer

    path = writer(tmp_path / "ckpt", mask_token_id=5, eos_token_id=6)
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == 64
    assert tok.id_to_token(5) in ("<|mdm_mask|>", "<|mask|>") and tok.id_to_token(6) == "<|endoftext|>"
    tcfg = json.loads((path / "tokenizer_config.json").read_text())
    text = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        tcfg["chat_template"]).render(messages=[{"role": "user", "content": "hi 12"}], add_generation_prompt=True,
                                      bos_token=tcfg["bos_token"], eos_token=tcfg["eos_token"])
    ids = tok.encode(text).ids
    assert 5 not in ids and max(ids) < 64
    assert "hi 12" in tok.decode(ids) and "assistant" in tok.decode(ids)
    assert tok.decode([6] + tok.encode("ab").ids) == "ab"


def test_sharded_index_resolves_every_tensor(tmp_path):
    single = C.write_llada_checkpoint(tmp_path / "one", seed=3)
    sharded = C.write_llada_checkpoint(tmp_path / "three", seed=3, shards=3)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert files == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    assert not (sharded / "model.safetensors").exists()
    for name, file in index["weight_map"].items():
        assert name in load_file(str(sharded / file))
    a, b = C.load_checkpoint_tensors(single), C.load_checkpoint_tensors(sharded)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in a.values())


@pytest.mark.parametrize("shards", [1, 2])
def test_corrupt_checkpoint(tmp_path, shards):
    src = C.write_dream_checkpoint(tmp_path / "src", shards=shards)
    dst = C.corrupt_checkpoint(src, tmp_path / "dst", drop=["model.norm.weight"],
                               rename={"lm_head.weight": "lm_head.weights"},
                               reshape={"model.layers.0.mlp.up_proj.weight": (64, 64)},
                               config_updates={"rope_scaling": {"type": "linear", "factor": 2.0}})
    t = C.load_checkpoint_tensors(dst)
    assert "model.norm.weight" not in t and "lm_head.weight" not in t and "lm_head.weights" in t
    assert tuple(t["model.layers.0.mlp.up_proj.weight"].shape) == (64, 64)
    assert json.loads((dst / "config.json").read_text())["rope_scaling"]["factor"] == 2.0
    assert "model.norm.weight" in C.load_checkpoint_tensors(src)  # source untouched
    with pytest.raises(KeyError):
        C.corrupt_checkpoint(src, tmp_path / "bad", drop=["no.such.tensor"])


# ------------------------------------------------------------------------------------------------ reference forward

@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_reference_forward_is_sane(tmp_path, kind):
    if kind == "llada":
        path = C.write_llada_checkpoint(tmp_path / kind, n_kv_heads=2)
        fwd = C.reference_llada_forward(path)
    else:
        path = C.write_dream_checkpoint(tmp_path / kind)
        fwd = C.reference_dream_forward(path)
    ids = torch.cat([torch.randint(0, 60, (3, 6), generator=torch.Generator().manual_seed(0)),
                     torch.full((3, 20), 63)], dim=1)
    logits = fwd(ids)
    assert logits.shape == (3, 26, 64) and torch.isfinite(logits).all()
    assert torch.allclose(fwd(ids[1:2]), logits[1:2], atol=1e-5)  # rows independent
    changed = ids.clone()
    changed[:, -1] = 7
    assert not torch.allclose(fwd(changed)[:, 0], logits[:, 0])  # bidirectional: the last token reaches position 0
    # predictions at masked positions (shift for Dream) are spread out and never the mask token
    pred = S.dream_shift_logits(logits) if kind == "dream" else logits
    probs = pred[:, 6:].softmax(-1)
    top, arg = probs.max(-1)
    assert (arg != 63).all() and top.std() > 0.05 and arg.unique().numel() >= 4
    bf16 = (C.reference_llada_forward if kind == "llada" else C.reference_dream_forward)(path, dtype=torch.bfloat16)
    assert bf16(ids).dtype == torch.bfloat16


def test_reference_forward_tied_and_unsupported(tmp_path):
    ids = torch.randint(0, 60, (1, 9), generator=torch.Generator().manual_seed(0))
    assert C.reference_llada_forward(C.write_llada_checkpoint(tmp_path / "a", weight_tying=True))(ids).shape[-1] == 64
    assert C.reference_dream_forward(C.write_dream_checkpoint(tmp_path / "b", tie_word_embeddings=True))(ids).shape \
        == (1, 9, 64)
    for flag in ({"include_bias": True}, {"scale_logits": True}, {"input_emb_norm": True}):
        path = C.write_llada_checkpoint(tmp_path / next(iter(flag)), config_overrides=flag)
        with pytest.raises(NotImplementedError):
            C.reference_llada_forward(path)
    with pytest.raises(NotImplementedError):
        C.reference_dream_forward(C.write_dream_checkpoint(tmp_path / "c", config_overrides={"use_sliding_window": True}))
