"""Corrupted checkpoints made here, one per row: each must fail to load with a CheckpointError (or, for chat
templates, a RequestError at render time) whose one-line message names the field, file or tensor."""
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from checkpoints import corrupt_checkpoint, write_dream_checkpoint, write_llada_checkpoint
from unmask.errors import CheckpointError, ConfigError, RequestError
from unmask.models.loader import load_model
from unmask.models.resolve import resolve_model
from unmask.models.tokenizer import TextTokenizer

HEAD = "model.transformer.ff_out.weight"
Q0 = "model.transformer.blocks.0.q_proj.weight"


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    return write_llada_checkpoint(tmp_path_factory.mktemp("llada"))


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    return write_dream_checkpoint(tmp_path_factory.mktemp("dream"))


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, name: str, change) -> None:
    file = path / name
    value = json.loads(file.read_text())
    file.write_text(json.dumps(change(value)))


def updated(**values):
    return lambda cfg: {**cfg, **values}


def load_error(path: Path, kind=CheckpointError) -> str:
    with pytest.raises(kind) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message
    return message


# ---- config.json ------------------------------------------------------------------------------------------
CONFIG_CASES = [
    ("llada", lambda cfg: [cfg], "config.json must hold a JSON object, got list"),
    ("llada", lambda cfg: "LLaDAModelLM", "config.json must hold a JSON object, got str"),
    ("llada", updated(architectures=7), "config.json architectures must be a list"),
    ("llada", updated(architectures="GPT2"), "unsupported architecture 'GPT2'"),
    ("llada", updated(d_model=64.0), "config.json: d_model must be an integer, got 64.0 (float)"),
    ("llada", updated(d_model="64"), "config.json: d_model must be an integer, got '64' (str)"),
    ("llada", updated(n_layers=True), "n_layers must be an integer, got True (bool)"),
    ("llada", updated(n_layers=0), "n_layers must be in [1, "),
    ("llada", updated(max_sequence_length=1e12), "max_sequence_length must be an integer, got 1000000000000.0"),
    ("llada", updated(max_sequence_length=10**12), "max_sequence_length must be in [1, 16777216], got 1000000000000"),
    ("llada", updated(max_sequence_length=2**24, n_heads=1, n_kv_heads=1), "needs 8.0 GiB of rotary tables"),
    ("llada", updated(rope_theta=-1), "config.json: rope_theta must be a finite number > 0, got -1"),
    ("llada", updated(rope_theta=0.0), "rope_theta must be a finite number > 0"),
    ("llada", updated(rope_theta=math.nan), "rope_theta must be a finite number > 0, got nan"),
    ("llada", updated(rope_theta=math.inf), "rope_theta must be a finite number > 0, got inf"),
    ("llada", updated(rope_theta="10000"), "rope_theta must be a number, got '10000' (str)"),
    ("llada", updated(rms_norm_eps=0), "rms_norm_eps must be a finite number > 0"),
    ("llada", updated(weight_tying="false"), "weight_tying must be true or false, got 'false'"),
    ("llada", updated(mask_token_id=64), "mask_token_id 64 outside the vocabulary (the embedding has 64 rows)"),
    ("llada", updated(mask_token_id=-3), "mask_token_id must be a token id"),
    ("llada", updated(eos_token_id=[62, 900]), "eos_token_id 900 outside the vocabulary"),
    ("llada", updated(eos_token_id="</s>"), "eos_token_id must be a token id (an int ≥ 0) or a list of them"),
    ("llada", updated(pad_token_id=1000), "pad_token_id 1000 outside the vocabulary"),
    ("llada", updated(mask_token_id=62), "mask id 62 cannot also be an EOS id"),
    ("llada", lambda cfg: {k: v for k, v in cfg.items() if k != "d_model"}, "lacks required key 'd_model'"),
    ("dream", updated(hidden_size=64.0), "config.json: hidden_size must be an integer, got 64.0 (float)"),
    ("dream", updated(max_position_embeddings=math.inf), "max_position_embeddings must be an integer"),
    ("dream", updated(num_key_value_heads="2"), "num_key_value_heads must be an integer"),
    ("dream", updated(rope_theta=-1.0), "rope_theta must be a finite number > 0, got -1.0"),
    ("dream", updated(tie_word_embeddings=1), "tie_word_embeddings must be true or false"),
    ("dream", updated(mask_token_id=1 << 40), "mask_token_id 1099511627776 outside the vocabulary"),
]


@pytest.mark.parametrize("arch, change, words", CONFIG_CASES)
def test_bad_config_json(request, tmp_path, arch, change, words):
    path = copy(request.getfixturevalue(arch), tmp_path / "ckpt")
    edit_json(path, "config.json", change)
    assert words in load_error(path)


def test_config_json_not_json(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    (path / "config.json").write_text('{"d_model": 64,')
    assert "config.json is not valid JSON" in load_error(path)
    (path / "config.json").write_bytes(b"\xff\xfe{}")
    assert "config.json is not valid JSON" in load_error(path)


def test_architectures_as_a_single_string_is_accepted(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    edit_json(path, "config.json", updated(architectures="LLaDAModelLM"))
    model, spec = load_model(path)
    assert spec.default_preset == "llada"


def test_eos_token_id_may_be_a_list(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    edit_json(path, "config.json", updated(eos_token_id=[62, 60]))
    assert load_model(path)[1].eos_ids == (62, 60)


# ---- weight files ------------------------------------------------------------------------------------------
def test_stray_file_beside_model_safetensors_is_ignored(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    tensors = load_file(str(path / "model.safetensors"))
    save_file({HEAD: torch.zeros_like(tensors[HEAD])}, str(path / "zz-extra.safetensors"))
    model, _ = load_model(path)
    torch.testing.assert_close(model.lm_head.weight, tensors[HEAD])


def test_tensors_stored_twice_name_both_files(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    tensors = load_file(str(path / "model.safetensors"))
    (path / "model.safetensors").unlink()
    names = sorted(tensors)
    save_file({n: tensors[n] for n in names[:10]}, str(path / "part-a.safetensors"))
    save_file({n: tensors[n] for n in names[9:]}, str(path / "part-b.safetensors"))
    message = load_error(path)
    assert f"stored twice (1): {names[9]} in part-a.safetensors and part-b.safetensors" in message


def sharded(src: Path, dst: Path) -> Path:
    return corrupt_checkpoint(write_llada_checkpoint(src, shards=2), dst)


@pytest.mark.parametrize("entry", ["../outside/model-00001-of-00002.safetensors", "/etc/passwd", "a/../../x"])
def test_index_entries_outside_the_directory(tmp_path, entry):
    path = sharded(tmp_path / "src", tmp_path / "ckpt")
    edit_json(path, "model.safetensors.index.json",
              lambda idx: {**idx, "weight_map": {**idx["weight_map"], Q0: entry}})
    message = load_error(path)
    assert "points outside the model directory" in message and repr(entry) in message


def test_symlinks_escaping_the_directory(tmp_path):
    path = sharded(tmp_path / "src", tmp_path / "ckpt")
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(path / "model-00002-of-00002.safetensors", outside)
    os.symlink(outside, path / "model-00002-of-00002.safetensors")
    message = load_error(path)
    assert "model-00002-of-00002.safetensors" in message and "outside the model directory" in message
    inside = write_llada_checkpoint(tmp_path / "single")
    shutil.move(inside / "model.safetensors", tmp_path / "w.safetensors")
    os.symlink(tmp_path / "w.safetensors", inside / "model.safetensors")
    assert "resolves to" in load_error(inside)


def test_symlinks_inside_the_directory_and_into_a_hub_cache_load(tmp_path):
    snapshot = tmp_path / "models--org--m" / "snapshots" / "abc"
    path = write_llada_checkpoint(snapshot)
    blobs = tmp_path / "models--org--m" / "blobs"
    blobs.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.move(path / name, blobs / name)
        os.symlink(Path("../../blobs") / name, path / name)
    load_model(path)


def test_index_weight_map_malformed(tmp_path):
    path = sharded(tmp_path / "src", tmp_path / "ckpt")
    edit_json(path, "model.safetensors.index.json", lambda idx: {"weight_map": ["a"]})
    assert "model.safetensors.index.json is malformed" in load_error(path)
    (path / "model.safetensors.index.json").write_text("[1]")
    assert "must hold a JSON object, got list" in load_error(path)


def rewrite_tensor(path: Path, name: str, make) -> None:
    tensors = load_file(str(path / "model.safetensors"))
    tensors[name] = make(tensors[name])
    save_file(tensors, str(path / "model.safetensors"))


@pytest.mark.parametrize("make, words", [
    (lambda t: t.long(), f"not floating point (1): {HEAD} (I64)"),
    (lambda t: t > 0, f"not floating point (1): {HEAD} (BOOL)"),
    (lambda t: t.to(torch.int8), f"not floating point (1): {HEAD} (I8)"),
])
def test_integer_and_bool_weights_are_refused(llada, tmp_path, make, words):
    path = copy(llada, tmp_path / "ckpt")
    rewrite_tensor(path, HEAD, make)
    assert words in load_error(path)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(llada, tmp_path, value):
    path = copy(llada, tmp_path / "ckpt")
    rewrite_tensor(path, Q0, lambda t: t.index_put_((torch.tensor([3]), torch.tensor([5])), torch.tensor(value)))
    assert f"non-finite weights (NaN or inf): tensors (1): {Q0}" in load_error(path)
    load_model(path, check_finite=False)  # the opt-out


def test_weights_that_overflow_the_load_dtype_are_refused(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    rewrite_tensor(path, Q0, lambda t: t.index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(1e6)))
    load_model(path)  # fine in float32
    with pytest.raises(CheckpointError, match=f"NaN or inf in torch.float16\\): tensors \\(1\\): {Q0}"):
        load_model(path, dtype=torch.float16)


def test_large_finite_weights_are_not_flagged(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    rewrite_tensor(path, Q0, lambda t: torch.full_like(t, 3e37))  # the tensor's sum overflows; its values do not
    load_model(path)


# ---- tokenizer ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vocab, words", [(70, "tokenizer.json has 70 tokens but the embedding"),
                                          (50, "tokenizer.json has 50 tokens but the embedding")])
def test_tokenizer_vocabulary_must_match_the_embedding(llada, tmp_path, vocab, words):
    path = copy(llada, tmp_path / "ckpt")
    other = write_llada_checkpoint(tmp_path / "other", vocab_size=vocab)
    shutil.copy(other / "tokenizer.json", path / "tokenizer.json")
    assert words in load_error(path) and "64 rows" in load_error(path)


def test_alignment_padding_of_the_embedding_is_accepted_but_special_ids_need_tokens(tmp_path):
    path = write_llada_checkpoint(tmp_path / "ckpt", vocab_size=128, mask_token_id=126, eos_token_id=125)
    small = write_llada_checkpoint(tmp_path / "small", vocab_size=127, mask_token_id=126, eos_token_id=125)
    shutil.copy(small / "tokenizer.json", path / "tokenizer.json")
    load_model(path)  # 127 tokens, 128 rows: padding to a multiple of 64
    edit_json(path, "config.json", updated(mask_token_id=127))
    assert "mask_token_id 127 has no token in tokenizer.json (127 tokens)" in load_error(path)


@pytest.mark.parametrize("content, words", [
    ("{not json", "tokenizer_config.json is not valid JSON"),
    ("[1, 2]", "tokenizer_config.json must hold a JSON object, got list"),
    ('{"eos_token": 5}', "tokenizer_config.json eos_token must be a token string"),
    ('{"bos_token": ["<s>"]}', "tokenizer_config.json bos_token must be a token string"),
    ('{"eos_token": {"content": 3}}', "eos_token must be a token string"),
    ('{"chat_template": 5}', "chat_template must be a string or a list of"),
    ('{"chat_template": [{"name": "default"}]}', "chat_template must be a string or a list of"),
])
def test_bad_tokenizer_config(llada, tmp_path, content, words):
    path = copy(llada, tmp_path / "ckpt")
    (path / "tokenizer_config.json").write_text(content)
    assert words in load_error(path)


def test_corrupt_tokenizer_json(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    (path / "tokenizer.json").write_text('{"model": ')
    assert "tokenizer.json cannot be read" in load_error(path)


# ---- chat templates ----------------------------------------------------------------------------------------
def with_template(src: Path, dst: Path, template) -> TextTokenizer:
    path = copy(src, dst)
    edit_json(path, "tokenizer_config.json", lambda c: {**c, "chat_template": template})
    return TextTokenizer(path)


def test_list_of_named_templates_is_supported(llada, tmp_path):
    tok = with_template(llada, tmp_path / "ckpt", [{"name": "tool_use", "template": "TOOLS {{ messages[0].content }}"},
                                                   {"name": "default", "template": "DEFAULT {{ messages[0].content }}"}])
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == "DEFAULT hi"
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], name="tool_use") == "TOOLS hi"
    with pytest.raises(ConfigError, match="no chat template named 'rag'; it has: default, tool_use"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}], name="rag")


def test_chat_template_jinja_file(llada, tmp_path):
    path = copy(llada, tmp_path / "ckpt")
    edit_json(path, "tokenizer_config.json", lambda c: {k: v for k, v in c.items() if k != "chat_template"})
    (path / "chat_template.jinja").write_text("J{{ messages[0].content }}")
    assert TextTokenizer(path).apply_chat_template([{"role": "user", "content": "x"}]) == "Jx"


@pytest.mark.parametrize("template, words", [
    ("{{ 'a' * 10**9 }}", "repeating a value of 1 items 1000000000 times"),
    ("{% for i in range(10**12) %}x{% endfor %}", "range() of 1000000000000 items"),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}", "range() items"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "joining 2 strings"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
     "joining values"),
    ("{{ '%1000000000s' % 'a' }}", "format width or precision of 1000000000"),
    ("{{ '{:>1000000000}'.format('a') }}", "format width or precision of 1000000000"),
    ("{{ 'a'.ljust(10**9) }}", "str.ljust to a width of 1000000000"),
    ("{{ 'a'|center(10**9) }}", "center filter to a width of 1000000000"),
    ("{{ messages[0].content * 10**6 }}", "repeating a value of 5 items 1000000 times"),
    ("{% for i in range(9000) %}{{ 'x' * 1000 }}{% endfor %}", "the rendered prompt exceeds"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
    ("{{ raise_exception('roles must alternate') }}", "chat template: roles must alternate"),
    ("{{ ''.__class__.__mro__ }}", "SecurityError"),
    ("{% for %}", "chat template does not parse"),
])
def test_templates_fail_fast_with_a_request_error(llada, tmp_path, template, words):
    tok = with_template(llada, tmp_path / "ckpt", template)
    with pytest.raises(RequestError) as err:
        tok.apply_chat_template([{"role": "user", "content": "hello"}])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_style_templates_still_render(llada, dream):
    for path in (llada, dream):
        text = TextTokenizer(path).apply_chat_template([{"role": "user", "content": "2+2?"}])
        assert "2+2?" in text and "assistant" in text


# ---- the model argument ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, kind, words", [
    (None, ConfigError, "got NoneType"), (123, ConfigError, "got int 123"), ("", ConfigError, "model is empty"),
    (["tiny-arith"], ConfigError, "got list"), ("x" * 5000, CheckpointError, "cannot be used as a path"),
    ("/no/such/dir", CheckpointError, "'/no/such/dir' is not a directory"),
])
def test_model_argument_is_checked(model, kind, words):
    with pytest.raises(kind) as err:
        resolve_model(model)
    assert words in str(err.value)


def test_llm_with_a_bad_model_argument():
    from unmask import LLM

    for model in (None, 123):
        with pytest.raises(ConfigError, match="model must be a checkpoint directory"):
            LLM(model)
