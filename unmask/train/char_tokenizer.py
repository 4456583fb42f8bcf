"""A character-level `tokenizers.Tokenizer` for the tiny models: one token per character.

Ids: `<|pad|>`=0, `<|eos|>`=1, `<|mask|>`=2, `<|unk|>`=3, then the characters in the given order.
Every character is its own pre-token and the decoder fuses tokens without separators, so
`decode(encode(s).ids) == s` for any string over the alphabet; other characters become `<|unk|>`.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from unmask.errors import ConfigError

PAD, EOS, MASK, UNK = "<|pad|>", "<|eos|>", "<|mask|>", "<|unk|>"
SPECIAL_TOKENS = (PAD, EOS, MASK, UNK)
PAD_ID, EOS_ID, MASK_ID, UNK_ID = range(4)
DEFAULT_CHARS = " \n" + string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,:;?!'\"+-*/=#()"


def char_vocab(chars: str) -> dict[str, int]:
    """The special tokens, then each distinct character of `chars` in first-seen order."""
    if not isinstance(chars, str) or not chars:
        raise ConfigError("the character set must be a non-empty string")
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in dict.fromkeys(chars):
        vocab[char] = len(vocab)
    return vocab


def build_char_tokenizer(chars: str = DEFAULT_CHARS) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(char_vocab(chars), unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    return tokenizer


def save_char_tokenizer(path_dir: str | Path, chars: str = DEFAULT_CHARS) -> Path:
    """Write `tokenizer.json` and `tokenizer_config.json` into `path_dir` (created if needed)."""
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_char_tokenizer(chars).save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": EOS,
        "mask_token": MASK,
        "pad_token": PAD,
        "unk_token": UNK,
        "chat_template": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out
