"""LLM: the facade. Resolve and load a model, turn prompts into a batch, denoise it, return Completions."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from unmask.config import DecodeConfig
from unmask.engine.api import Completion, StepOutput
from unmask.engine.autoregressive import ARModel
from unmask.engine.engine import Engine
from unmask.engine.runner import check_compiler
from unmask.errors import CheckpointError, ConfigError, GenerationError, RequestError
from unmask.models.cache_view import FullView
from unmask.models.loader import generation_defaults, load_model
from unmask.models.resolve import resolve_model
from unmask.models.tokenizer import TextTokenizer

StepCallback = Callable[[list[StepOutput]], None]
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
        values = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{file} must be a JSON object of decode settings, got {type(values).__name__}")
    return checked_defaults(values, str(file))


def checked_defaults(values: dict, source: str) -> dict:
    """`values` when they form a valid DecodeConfig on their own; else CheckpointError naming `source`."""
    try:
        DecodeConfig.from_dict(values)  # unknown or invalid settings fail here, naming the field
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None
    return values


class LLM:
    """A diffusion language model ready to generate: `LLM("tiny-arith").generate(["2+2="])`."""

    def __init__(self, model: str | Path, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, compile: bool = False,
                 verifier: str | Path | None = None, context_len: int | None = None) -> None:
        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.model, spec = load_model(self.path, self.device, pick_dtype(dtype, self.device))
        if spec.autoregressive:
            raise ConfigError(f"{model} is an autoregressive (causal) model, not a diffusion model: pass it as "
                              f"the verifier (LLM(dllm, verifier={str(model)!r}), --verifier {model})")
        if compile and spec.attention == "encoder_canvas":
            raise ConfigError("--compile compiles the step of LLaDA, Dream and the block-diffusion families; "
                              "an encoder–canvas model (DiffusionGemma) runs eagerly: drop --compile")
        if context_len is not None and not 0 < context_len <= spec.context_len:
            raise ConfigError(f"--max-context (context_len) must be in [1, {spec.context_len}] (the model's context), "
                              f"got {context_len}")
        self.context_len = context_len   # each engine's runner: the longest canvas, and its K/V pool's length
        if compile:
            check_compiler(self.device)   # a machine that cannot compile fails here, with one message
        self.compile = compile   # each engine's Runner compiles the step into one graph (engine/runner.py)
        self.tokenizer = TextTokenizer(self.path)
        vocab = self.model.cfg.vocab_size
        stops = tuple(i for i in self.tokenizer.stop_ids() if i < vocab and i != spec.mask_id)
        generation, eos = generation_defaults(self.path)   # the reference sampler's settings, where it reads them
        self.spec = replace(spec, eos_ids=tuple(sorted(set(spec.eos_ids) | set(stops) | set(eos))))
        self.decode_defaults = {**checked_defaults(generation, "generation_config.json"),
                                **read_decode_defaults(self.path)}
        self.verifier = self.load_verifier(verifier, pick_dtype(dtype, self.device)) if verifier is not None else None
        self.engine = self.make_engine(max_running=1)   # for input checks; generate() runs its own
        self.max_token_chars = max((len(t) for t in self.tokenizer.backend.get_vocab()), default=64) or 64

    def load_verifier(self, name: str | Path, dtype: torch.dtype) -> ARModel:
        """The AR model of AR-verified decoding; it must read and write the same token ids as the dLLM."""
        verifier, tokenizer = ARModel.load(name, self.device, dtype)
        if tokenizer.backend.get_vocab() != self.tokenizer.backend.get_vocab() or (
                verifier.vocab_size != self.model.cfg.vocab_size):
            raise ConfigError(f"verifier {name}: its tokenizer or vocabulary ({verifier.vocab_size} ids) differs from "
                              f"the model's ({self.model.cfg.vocab_size} ids); the verifier must share the tokenizer")
        return verifier

    def default_config(self, **overrides: object) -> DecodeConfig:
        """The model's own preset, with the checkpoint's `unmask_decode.json` settings and then `overrides`."""
        return self.preset_config(self.spec.default_preset, **overrides)

    # ---- prompts -> batch -------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str] | Sequence[Sequence[int]], chat: bool = False,
               allow_mask: bool = False) -> list[list[int]]:
        """Token ids of each prompt; strings go through the chat template when `chat`."""
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise RequestError(f"prompts must be a non-empty list of strings or of token-id lists, "
                               f"got {type(prompts).__name__}")
        if all(isinstance(p, str) for p in prompts):
            for i, p in enumerate(prompts):
                self.check_text_length(p, f"prompt {i}")
            if chat:
                prompts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}]) for p in prompts]
            ids = [self.tokenizer.encode(p, add_special_tokens=not chat) for p in prompts]
        elif all(isinstance(p, (list, tuple)) for p in prompts):
            ids = [list(p) for p in prompts]
        else:
            raise RequestError("prompts must be all strings or all token-id lists, not a mix")
        return self._check_ids(ids, allow_mask)

    def check_text_length(self, text: str, what: str = "prompt") -> None:
        """Refuse text that cannot fit the context before tokenising it (tokenising 10⁷ characters takes seconds)."""
        limit = self.spec.context_len * self.max_token_chars
        if len(text) > limit:
            raise RequestError(f"{what} has {len(text)} characters; the model's context of {self.spec.context_len} "
                               f"tokens holds at most {limit}", status=413)

    def _check_ids(self, ids: list[list], allow_mask: bool) -> list[list[int]]:
        checked = []
        for i, row in enumerate(ids):
            try:
                checked.append(self.engine.check_prompt(row, allow_mask))
            except RequestError as e:
                raise RequestError(f"prompt {i}: {e}", status=e.status) from None
        return checked

    def check_config(self, config: DecodeConfig) -> None:
        """ConfigError when this model cannot decode with `config` (a mask-model rule on DiffusionGemma, decode
        blocks that are not a block-causal model's blocks, a cache that cannot serve its attention)."""
        self.engine.check_config(config)

    def make_engine(self, **options: object) -> Engine:
        """A fresh Engine on this model (serving passes limits and `prompt_bucket=True`)."""
        options = {"context_len": self.context_len, **options}
        return Engine(self.model, self.spec, self.device, detokenize=self.tokenizer.decode, compile=self.compile,
                      model_dir=self.path, verifier=self.verifier, **options)

    # ---- generation -------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], config: DecodeConfig | str | None = None,
                 chat: bool = False, on_step: StepCallback | None = None) -> list[Completion]:
        """Denoise every prompt; each gets the tokens it would get alone. A loop over `Engine.step()`.

        config: a DecodeConfig, a preset name, or None for the model's defaults. on_step(outputs) runs after
        every step with that step's StepOutputs (each carrying its request's whole canvas).
        """
        config = self.resolve_config(config)
        ids = self.encode(prompts, chat)
        engine = self.make_engine(max_running=len(ids))
        order = [engine.add_request(row, config, stream_canvas=on_step is not None) for row in ids]
        done: dict[str, Completion] = {}
        with torch.inference_mode():
            while engine.has_unfinished():
                outputs = engine.step()
                done.update((o.request_id, o.completion) for o in outputs if o.finished)
                if on_step is not None:
                    on_step(outputs)
        failed = [(i, done[r].error) for i, r in enumerate(order) if done[r].error]
        if failed:
            raise GenerationError(f"prompt {failed[0][0]}: {failed[0][1]}")
        return [done[r] for r in order]

    def preset_config(self, name: str, **overrides: object) -> DecodeConfig:
        """Preset `name` on this model: the recipe, then the checkpoint's unmask_decode.json, then `overrides`
        (a shorter gen_length clamps the recipe's block_length and steps)."""
        return DecodeConfig.preset(name, defaults=self.decode_defaults, **overrides)

    def resolve_config(self, config: DecodeConfig | str | None) -> DecodeConfig:
        if config is None:
            return self.default_config()
        if isinstance(config, str):
            return self.preset_config(config)
        if not isinstance(config, DecodeConfig):
            raise ConfigError(f"config must be a DecodeConfig, a preset name or None, got {type(config).__name__}; "
                              f"build one with DecodeConfig.from_dict(...)")
        return config

    def check_latent(self, latent: Sequence[float] | None, rows: int) -> torch.Tensor | None:
        """logits()' λ values as a (rows,) tensor; RequestError when the model needs them and they are absent
        or malformed, or when it takes none."""
        if not self.spec.latent_conditioned:
            if latent is not None:
                raise RequestError("latent: this model is not λ-conditioned; call logits() without it")
            return None
        if latent is None:
            raise RequestError("logits() of a λ-conditioned model (a Di4C student) needs latent=[λ per row] in [0, 1]")
        values = list(latent)
        if len(values) != rows or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                                          for v in values):
            raise RequestError(f"latent must hold one λ per row ({rows}), each a number in [0, 1]")
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[Sequence[int]], latent: Sequence[float] | None = None) -> torch.Tensor:
        """Bidirectional logits (B, L, V), aligned so row i predicts token i (the model's shift applied).
        latent: one λ in [0, 1] per row, for (and only for) a λ-conditioned model (a Di4C student)."""
        if self.spec.attention == "encoder_canvas":
            raise RequestError("logits() reads a masked sequence in one forward; an encoder–canvas model "
                               "(DiffusionGemma) predicts canvases from an encoded prompt: use generate()")
        ids = self.encode(token_ids, allow_mask=True)
        if len({len(r) for r in ids}) != 1:
            raise RequestError("logits() needs sequences of equal length")
        if len(ids[0]) > self.spec.context_len:
            raise RequestError(f"logits() input has {len(ids[0])} tokens; the model's context length is "
                               f"{self.spec.context_len}", status=413)
        x = torch.tensor(ids, device=self.device)
        positions = torch.arange(x.shape[1], device=self.device).expand_as(x)
        out = self.model(x, positions, FullView(), latent=self.check_latent(latent, len(ids)))
        if self.spec.logit_shift:
            out = torch.cat([out[:, :1], out[:, :-1]], dim=1)
        return out
