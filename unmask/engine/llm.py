"""LLM: the facade. Resolve and load a model, turn prompts into a batch, denoise it, return Completions."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from unmask.cache import Canvas
from unmask.config import DecodeConfig
from unmask.decoding import DecodeState
from unmask.engine.api import Completion, FinishReason
from unmask.engine.build import build_parts
from unmask.engine.generate import StepCallback, denoise
from unmask.errors import CheckpointError, ConfigError, RequestError
from unmask.models.cache_view import FullView, positions_from_mask
from unmask.models.loader import load_model
from unmask.models.resolve import resolve_model
from unmask.models.tokenizer import TextTokenizer

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"invalid device {device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available")
    return device


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    return DTYPES[dtype]


DECODE_DEFAULTS = "unmask_decode.json"  # optional decode settings a checkpoint ships (e.g. its gen_length)


def read_decode_defaults(path: Path) -> dict:
    file = path / DECODE_DEFAULTS
    if not file.is_file():
        return {}
    try:
        values = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from None
    DecodeConfig.from_dict(values)  # unknown or invalid settings fail here, naming the field
    return values


class LLM:
    """A diffusion language model ready to generate: `LLM("tiny-arith").generate(["2+2="])`."""

    def __init__(self, model: str | Path, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None) -> None:
        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.model, spec = load_model(self.path, self.device, pick_dtype(dtype, self.device))
        self.tokenizer = TextTokenizer(self.path)
        vocab = self.model.cfg.vocab_size
        stops = tuple(i for i in self.tokenizer.stop_ids() if i < vocab and i != spec.mask_id)
        self.spec = replace(spec, eos_ids=tuple(sorted(set(spec.eos_ids) | set(stops))))
        self.decode_defaults = read_decode_defaults(self.path)

    def default_config(self, **overrides: object) -> DecodeConfig:
        """The model's own preset, with the checkpoint's `unmask_decode.json` settings and then `overrides`."""
        return DecodeConfig.preset(self.spec.default_preset, **{**self.decode_defaults, **overrides})

    # ---- prompts -> batch -------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str] | Sequence[Sequence[int]], chat: bool = False) -> list[list[int]]:
        """Token ids of each prompt; strings go through the chat template when `chat`."""
        if isinstance(prompts, (str, bytes)) or not len(prompts):
            raise RequestError("prompts must be a non-empty list of strings or of token-id lists")
        if all(isinstance(p, str) for p in prompts):
            if chat:
                prompts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}]) for p in prompts]
            ids = [self.tokenizer.encode(p, add_special_tokens=not chat) for p in prompts]
        elif all(isinstance(p, (list, tuple)) for p in prompts):
            ids = [[int(t) for t in p] for p in prompts]
        else:
            raise RequestError("prompts must be all strings or all token-id lists, not a mix")
        self._check_ids(ids)
        return ids

    def _check_ids(self, ids: list[list[int]]) -> None:
        vocab = self.model.cfg.vocab_size
        for i, row in enumerate(ids):
            if not row:
                raise RequestError(f"prompt {i} is empty")
            bad = [t for t in row if not 0 <= t < vocab]
            if bad:
                raise RequestError(f"prompt {i} has token ids outside the vocabulary [0, {vocab}): {bad[:5]}")

    def canvas(self, ids: list[list[int]], gen_length: int) -> Canvas:
        """Left-pad prompts to one length; positions count from each row's first real token."""
        longest = max(len(r) for r in ids)
        if longest + gen_length > self.spec.context_len:
            raise RequestError(f"prompt ({longest} tokens) + gen_length ({gen_length}) = {longest + gen_length} "
                               f"exceeds the model's context length {self.spec.context_len}", status=413)
        pad = self.spec.pad_id if self.spec.pad_id is not None else self.spec.eos_ids[0]
        prompt = torch.tensor([[pad] * (longest - len(r)) + r for r in ids], device=self.device)
        real = torch.tensor([[False] * (longest - len(r)) + [True] * len(r) for r in ids], device=self.device)
        key_mask = torch.cat([real, torch.ones(len(ids), gen_length, dtype=torch.bool, device=self.device)], 1)
        return Canvas(prompt, key_mask, positions_from_mask(key_mask), self.spec.logit_shift)

    # ---- generation -------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], config: DecodeConfig | None = None,
                 chat: bool = False, on_step: StepCallback | None = None) -> list[Completion]:
        """Denoise every prompt in one batch; each row gets the tokens it would get alone."""
        config = config or self.default_config()
        ids = self.encode(prompts, chat)
        canvas = self.canvas(ids, config.gen_length)
        state = DecodeState.start(len(ids), config.gen_length, self.spec.mask_id, self.spec.eos_ids, self.device)
        parts = build_parts(config, self.spec, len(ids), self.device)
        start, finished_at = time.perf_counter(), [0.0] * len(ids)

        def record(step_state: DecodeState, finished: torch.Tensor) -> None:
            for row in range(len(ids)):
                if finished[row] and not finished_at[row]:
                    finished_at[row] = time.perf_counter() - start
            if on_step is not None:
                on_step(step_state, finished)

        state = denoise(self.model, canvas, state, parts, record)
        cache = parts.cache
        computed = cache.positions_x_layers.tolist() if cache.positions_x_layers is not None else [0] * len(ids)
        share = cache.peak_bytes // len(ids)
        cache.reset()  # the batch is done: free its cache
        return [replace(self._completion(state, row, finished_at[row]), computed=computed[row], cache_bytes=share)
                for row in range(len(ids))]

    def _completion(self, state: DecodeState, row: int, seconds: float) -> Completion:
        tokens = state.tokens[row].tolist()
        eos = int(state.first_eos()[row])
        answer = [t for t in tokens[:eos] if t != self.spec.mask_id]
        reason = FinishReason.EOS if eos < state.gen_length else FinishReason.LENGTH
        return Completion(self.tokenizer.decode(answer), answer, int(state.nfe[row]), reason.value, seconds)

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Bidirectional logits (B, L, V), aligned so row i predicts token i (the model's shift applied)."""
        ids = self.encode(token_ids)
        if len({len(r) for r in ids}) != 1:
            raise RequestError("logits() needs sequences of equal length")
        x = torch.tensor(ids, device=self.device)
        positions = torch.arange(x.shape[1], device=self.device).expand_as(x)
        out = self.model(x, positions, FullView())
        if self.spec.logit_shift:
            out = torch.cat([out[:, :1], out[:, :-1]], dim=1)
        return out
