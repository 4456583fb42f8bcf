"""The character tokenizer: fixed special ids, exact round trips over every task text, save and reload."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from unmask.bench.tasks import get_task
from unmask.errors import ConfigError
from unmask.train.char_tokenizer import (DEFAULT_CHARS, EOS_ID, MASK_ID, PAD_ID, UNK_ID, build_char_tokenizer,
                                         save_char_tokenizer)


def task_texts() -> list[str]:
    texts = []
    for name in ("arith", "sort", "copy", "two-modes"):
        task = get_task(name)
        for split, n in (("train", 500), ("test", 100)):
            for ex in task.examples(split, n):
                texts += [task.prompt(ex), ex.answer, task.prompt(ex) + ex.answer]
    return texts


def test_special_ids() -> None:
    tok = build_char_tokenizer()
    ids = [tok.token_to_id(t) for t in ("<|pad|>", "<|eos|>", "<|mask|>", "<|unk|>")]
    assert ids == [PAD_ID, EOS_ID, MASK_ID, UNK_ID] == [0, 1, 2, 3]
    assert tok.get_vocab_size() == 4 + len(set(DEFAULT_CHARS))
    assert tok.token_to_id(DEFAULT_CHARS[0]) == 4


def test_default_chars_cover_the_tasks() -> None:
    assert set("".join(task_texts())) <= set(DEFAULT_CHARS)
    assert set(".,:;?!'\"+-*/=#() \n") <= set(DEFAULT_CHARS)


def test_round_trip_over_task_texts() -> None:
    tok = build_char_tokenizer()
    for text in task_texts():
        ids = tok.encode(text).ids
        assert len(ids) == len(text) and UNK_ID not in ids
        assert tok.decode(ids) == text


EDGE_CASES = ["", " ", "  a  b  ", "\n\nx\n", "a b", "#### 56", "It's \"ok\" (2/3);!", DEFAULT_CHARS]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_round_trip_edge_cases(text: str) -> None:
    tok = build_char_tokenizer()
    assert tok.decode(tok.encode(text).ids) == text


def test_unknown_characters_map_to_unk() -> None:
    tok = build_char_tokenizer("ab")
    assert tok.encode("a€b~").ids == [4, UNK_ID, 5, UNK_ID]
    assert tok.decode(tok.encode("a€b").ids) == "ab"


def test_special_tokens_encode_and_skip() -> None:
    tok = build_char_tokenizer()
    ids = tok.encode("ab<|eos|>").ids
    assert ids[-1] == EOS_ID and len(ids) == 3
    assert tok.decode(ids) == "ab" and tok.decode(ids, skip_special_tokens=False) == "ab<|eos|>"


def test_duplicates_and_empty_alphabet() -> None:
    assert build_char_tokenizer("abca").get_vocab_size() == 7
    with pytest.raises(ConfigError):
        build_char_tokenizer("")


def test_save_and_reload(tmp_path: Path) -> None:
    out = save_char_tokenizer(tmp_path / "tok")
    loaded = Tokenizer.from_file(str(out / "tokenizer.json"))
    built = build_char_tokenizer()
    for text in task_texts()[:300] + [DEFAULT_CHARS]:
        assert loaded.encode(text).ids == built.encode(text).ids
        assert loaded.decode(loaded.encode(text).ids) == text
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert (config["eos_token"], config["mask_token"], config["pad_token"]) == ("<|eos|>", "<|mask|>", "<|pad|>")
    assert "chat_template" in config and config["chat_template"] is None
