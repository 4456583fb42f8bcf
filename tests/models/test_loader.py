"""Checkpoints in the published layouts: round trip, parity with the reference forward, strict errors."""
import json

import pytest
import torch

from checkpoints import (corrupt_checkpoint, reference_dream_forward, reference_llada_forward,
                         write_dream_checkpoint, write_llada_checkpoint)
from unmask import LLM
from unmask.errors import CheckpointError
from unmask.models.loader import load_model

WRITERS = {"llada": (write_llada_checkpoint, reference_llada_forward),
           "dream": (write_dream_checkpoint, reference_dream_forward)}
IDS = torch.tensor([[3, 9, 17, 4, 22, 8, 5], [1, 2, 3, 4, 5, 6, 7]])


@pytest.fixture(scope="module", params=sorted(WRITERS))
def ckpt(request, tmp_path_factory):
    writer, _ = WRITERS[request.param]
    return request.param, writer(tmp_path_factory.mktemp(request.param))


def test_native_logits_match_reference_forward(ckpt):
    arch, path = ckpt
    model, spec = load_model(path)
    ours = model(IDS, torch.arange(IDS.shape[1]).expand_as(IDS))
    theirs = WRITERS[arch][1](path)(IDS)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-5)
    assert spec.logit_shift == (1 if arch == "dream" else 0)


def test_llm_logits_apply_the_shift(ckpt):
    arch, path = ckpt
    raw = WRITERS[arch][1](path)(IDS).float()
    aligned = LLM(str(path)).logits(IDS.tolist())
    expected = torch.cat([raw[:, :1], raw[:, :-1]], 1) if arch == "dream" else raw
    torch.testing.assert_close(aligned, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shards, dtype", [(3, torch.float32), (1, torch.bfloat16), (2, torch.float16)])
def test_sharded_and_low_precision_checkpoints_load(tmp_path, shards, dtype):
    path = write_llada_checkpoint(tmp_path, shards=shards, dtype=dtype)
    model, _ = load_model(path, dtype=torch.float32)
    torch.testing.assert_close(model(IDS, torch.arange(7).expand_as(IDS)),
                               reference_llada_forward(path, dtype=torch.float32)(IDS).float(), rtol=1e-5, atol=1e-5)
    if shards > 1:
        assert (path / "model.safetensors.index.json").is_file()


def test_tied_and_gqa_variants(tmp_path):
    path = write_llada_checkpoint(tmp_path / "a", weight_tying=True, n_kv_heads=2)
    model, _ = load_model(path)
    assert model.lm_head.weight is model.embed.weight
    torch.testing.assert_close(model(IDS, torch.arange(7).expand_as(IDS)), reference_llada_forward(path)(IDS).float(),
                               rtol=1e-5, atol=1e-5)
    path = write_dream_checkpoint(tmp_path / "b", tie_word_embeddings=True)
    model, _ = load_model(path)
    assert model.lm_head.weight is model.embed.weight


def test_spec_read_from_config(tmp_path):
    path = write_dream_checkpoint(tmp_path, mask_token_id=60, eos_token_id=61, pad_token_id=62)
    _, spec = load_model(path)
    assert (spec.mask_id, spec.eos_ids, spec.pad_id, spec.default_preset) == (60, (61,), 62, "dream")


@pytest.mark.parametrize("damage, words", [
    ({"drop": ["model.transformer.blocks.1.q_proj.weight"]}, "missing (1): model.transformer.blocks.1.q_proj.weight"),
    ({"rename": {"model.transformer.ln_f.weight": "model.transformer.ln_final.weight"}},
     "unexpected (1): model.transformer.ln_final.weight"),
    ({"reshape": {"model.transformer.blocks.0.ff_out.weight": [64, 64]}},
     "mis-shaped (1): model.transformer.blocks.0.ff_out.weight [64, 64] (config implies [64, 128])"),
    ({"config_updates": {"n_layers": 3}}, "missing (9): model.transformer.blocks.2."),
    ({"config_updates": {"architectures": ["GPT2LMHeadModel"]}}, "unsupported architecture"),
    ({"config_updates": {"alibi": True}}, "alibi"),
])
def test_corrupted_checkpoints_name_the_tensors(tmp_path, damage, words):
    src = write_llada_checkpoint(tmp_path / "src")
    dst = corrupt_checkpoint(src, tmp_path / "dst", **damage)
    with pytest.raises(CheckpointError) as err:
        load_model(dst)
    assert words in str(err.value)


def test_all_problems_reported_together(tmp_path):
    src = write_dream_checkpoint(tmp_path / "src")
    dst = corrupt_checkpoint(src, tmp_path / "dst", drop=["model.norm.weight"], rename={"lm_head.weight": "head.w"})
    message = str(pytest.raises(CheckpointError, load_model, dst).value)
    assert "missing" in message and "model.norm.weight" in message and "lm_head.weight" in message
    assert "unexpected (1): head.w" in message


def test_unreadable_files(tmp_path):
    src = write_llada_checkpoint(tmp_path / "src", shards=2)
    dst = corrupt_checkpoint(src, tmp_path / "dst", remove_files=["model-00002-of-00002.safetensors"])
    with pytest.raises(CheckpointError, match="shard files that do not exist"):
        load_model(dst)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "bad")
    (tmp_path / "bad" / "config.json").write_text(json.dumps(json.loads((src / "config.json").read_text())))
    (tmp_path / "bad" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="never loads pickles"):
        load_model(tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "bad")


def test_missing_config_and_tokenizer(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path)
    src = write_llada_checkpoint(tmp_path / "src")
    dst = corrupt_checkpoint(src, tmp_path / "dst", remove_files=["tokenizer.json"])
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        LLM(str(dst))
