"""Text ↔ ids from a checkpoint's `tokenizer.json`, and its chat template from `tokenizer_config.json`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from unmask.errors import CheckpointError, ConfigError
from unmask.models.loader import confined, read_json
from unmask.models.spec import DiffusionSpec

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>")  # LLaDA / Qwen / Dream end markers
MAX_PADDING = 0.01  # an embedding may have up to 1% more rows than the tokenizer has tokens (alignment padding)
PADDING_MULTIPLE = 64


def _token_text(config: dict[str, Any], key: str) -> str | None:
    """tokenizer_config.json stores special tokens as strings or as {"content": ...} objects."""
    value = config.get(key)
    text = value.get("content") if isinstance(value, dict) else value
    if text is not None and not isinstance(text, str):
        raise CheckpointError(f"tokenizer_config.json {key} must be a token string or {{\"content\": ...}}, "
                              f"got {str(value)[:60]} ({type(value).__name__})")
    return text


def _chat_templates(path: Path, config: dict[str, Any]) -> dict[str, str]:
    """name → template: a string is the "default" one; Hugging Face's list of {"name", "template"} is supported;
    without either, a `chat_template.jinja` file beside the tokenizer is read."""
    value = config.get("chat_template")
    if value is None and (path / "chat_template.jinja").is_file():
        value = confined(path, "chat_template.jinja").read_text(encoding="utf-8", errors="replace")
    if value is None:
        return {}
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, list) and all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                       and isinstance(t.get("template"), str) for t in value):
        return {t["name"]: t["template"] for t in value}
    raise CheckpointError(f"tokenizer_config.json chat_template must be a string or a list of "
                          f"{{\"name\": ..., \"template\": ...}} objects, got {type(value).__name__}")


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the chat template and special tokens of its checkpoint."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        if not (path / "tokenizer.json").is_file():
            raise CheckpointError(f"{path} has no tokenizer.json")
        file = confined(path, "tokenizer.json")
        try:
            self.backend = Tokenizer.from_file(str(file))
        except Exception as e:  # the tokenizers library raises a bare Exception on malformed files
            raise CheckpointError(f"{file} cannot be read: {str(e)[:200]}") from None
        has_config = (path / "tokenizer_config.json").is_file()
        self.config: dict[str, Any] = read_json(path, "tokenizer_config.json") if has_config else {}
        self.chat_templates = _chat_templates(path, self.config)
        self.chat_template: str | None = self.chat_templates.get("default")
        self.eos_token = _token_text(self.config, "eos_token")
        self.bos_token = _token_text(self.config, "bos_token")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def token_id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def vocab_size(self) -> int:
        """One more than the largest token id, added tokens included."""
        return max(self.backend.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    def stop_ids(self) -> tuple[int, ...]:
        """Ids of the EOS and end-of-turn tokens this vocabulary has."""
        ids = (self.token_id(t) for t in (self.eos_token, *END_OF_TURN_TOKENS))
        return tuple(sorted({i for i in ids if i is not None}))

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True,
                            name: str = "default") -> str:
        """Render the checkpoint's chat template `name` in a bounded sandbox (models/chat_template.py)."""
        from unmask.models.chat_template import render_chat_template

        if not self.chat_templates:
            raise ConfigError("this model's tokenizer_config.json has no chat_template; run without --chat")
        if name not in self.chat_templates:
            raise ConfigError(f"this model has no chat template named {name!r}; it has: "
                              f"{', '.join(sorted(self.chat_templates))}")
        return render_chat_template(self.chat_templates[name], messages=messages,
                                    add_generation_prompt=add_generation_prompt,
                                    bos_token=self.bos_token or "", eos_token=self.eos_token or "")


def check_vocabulary(tokenizer: TextTokenizer, rows: int, spec: DiffusionSpec) -> None:
    """The tokenizer must name every row the model can produce, and every special id must be a token.

    More tokens than embedding rows: ids the model cannot read. Fewer: generated ids with no text, unless the
    gap is alignment padding (the embedding a multiple of 64 and at most 1% larger, as LLaDA's and Dream's are).
    """
    size = tokenizer.vocab_size()
    padding = rows % PADDING_MULTIPLE == 0 and rows - size <= MAX_PADDING * rows
    if size > rows or (size < rows and not padding):
        raise CheckpointError(f"tokenizer.json has {size} tokens but the embedding (config.json vocab size) has "
                              f"{rows} rows; they must match")
    ids = [("mask_token_id", spec.mask_id)] if spec.corruption == "mask" else []
    ids += [("eos_token_id", i) for i in spec.eos_ids]
    outside = [f"{key} {i}" for key, i in ids if i >= size]
    if outside:
        raise CheckpointError(f"config.json {', '.join(outside)} has no token in tokenizer.json ({size} tokens)")
