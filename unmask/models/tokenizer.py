"""Text ↔ ids from a checkpoint's `tokenizer.json`, and its chat template from `tokenizer_config.json`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unmask.errors import CheckpointError, ConfigError

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>")  # LLaDA / Qwen / Dream end markers


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens as strings or as {"content": ...} objects."""
    return value.get("content") if isinstance(value, dict) else value


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the chat template and special tokens of its checkpoint."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise CheckpointError(f"{path} has no tokenizer.json")
        try:
            self.backend = Tokenizer.from_file(str(file))
        except Exception as e:  # the tokenizers library raises a bare Exception on malformed files
            raise CheckpointError(f"{file} cannot be read: {e}") from None
        config_file = path / "tokenizer_config.json"
        self.config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.chat_template: str | None = self.config.get("chat_template")
        self.eos_token = _token_text(self.config.get("eos_token"))
        self.bos_token = _token_text(self.config.get("bos_token"))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def token_id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def stop_ids(self) -> tuple[int, ...]:
        """Ids of the EOS and end-of-turn tokens this vocabulary has."""
        ids = (self.token_id(t) for t in (self.eos_token, *END_OF_TURN_TOKENS))
        return tuple(sorted({i for i in ids if i is not None}))

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render the checkpoint's jinja chat template (sandboxed) into the prompt text."""
        if not self.chat_template:
            raise ConfigError("this model's tokenizer_config.json has no chat_template; run without --chat")
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ConfigError(f"chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        try:
            return env.from_string(self.chat_template).render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "", eos_token=self.eos_token or "")
        except TemplateError as e:
            raise ConfigError(f"chat template failed to render: {e}") from None
