"""unmask as a model of EleutherAI's lm-evaluation-harness (`pip install 'unmask[eval]'`, lm_eval ≥ 0.4).

    unmask lm-eval --model unmask --model_args pretrained=tiny-arith,preset=fast-dllm,threshold=0.8 --tasks …
    lm_eval.simple_evaluate(model="unmask", model_args={...}, tasks=[...])   # after `import unmask.eval.lm_eval_adapter`

model_args: `pretrained` (a checkpoint directory, bundled name or hub id), `preset` (default: the model's
own), any DecodeConfig field as an override (`threshold=0.8`, `cache=none`, `gen_length=256`), `device`,
`dtype`, `chat` (wrap contexts in the chat template), and the likelihood knobs of LLaDA's evaluation:
`mc_num` (128 Monte-Carlo masks per request), `mc_batch_size` (32 rows per forward; divides mc_num),
`cfg` (0: classifier-free guidance scale of the likelihood), `greedy_check` (true: compute is_greedy
with LLaDA's one-token-per-forward greedy pass) and `seed`; `split_whitespace` (true: a context's trailing
whitespace moves to the start of the continuation before tokenising, as lm_eval's HF model and LLaDA's
evaluation do; false keeps it in the prompt, for models like tiny-arith trained on prompts ending in "\n"). lm_eval's own `--batch_size` is the number of
prompts `generate_until` decodes together (default 16; "auto" means 16).

- `generate_until`: prompts grouped by their generation kwargs, decoded through the engine in batches with
  the preset and overrides; each text is cut at the first of the request's `until` strings. The number of
  generated tokens is the config's `gen_length` (as in LLaDA's evaluation), not the task's `max_gen_toks`.
- `loglikelihood`: the Monte-Carlo masked-diffusion estimate (`unmask/eval/likelihood.py`).
- `loglikelihood_rolling`: the same estimate summed over lm_eval's disjoint rolling windows of the model's
  context (each window conditioned on the tokens before it that fit); an estimate of a lower bound, so
  perplexities from it are upper bounds.

lm_eval discovers only its own models; `unmask lm-eval` is lm_eval's command line with this model registered.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from unmask.config import DecodeConfig
from unmask.engine.llm import LLM
from unmask.errors import ConfigError
from unmask.eval.likelihood import MonteCarloLikelihood
from unmask.progress import progress
from unmask.settings import parse_field

DEFAULT_BATCH_SIZE = 16
OWN_ARGS = {"pretrained", "preset", "device", "dtype", "chat", "mc_num", "mc_batch_size", "cfg", "greedy_check",
            "seed", "split_whitespace", "batch_size", "max_batch_size"}


def decode_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """model_args that are not the adapter's own → typed DecodeConfig overrides; unknown keys are refused."""
    fields = set(DecodeConfig.field_names())
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"unmask lm_eval model: unknown model_args {', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(OWN_ARGS))} and any decode setting ({', '.join(sorted(fields))})")
    # lm_eval already typed the values ("none" became None); read them again as the field's own type
    return {k: parse_field(k, "none" if v is None else str(v), "model_args") for k, v in values.items()}


def batch_size_of(value: Any) -> int:
    if value is None or value == "auto" or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"batch_size must be a positive int or 'auto', got {value!r}") from None
    if size < 1:
        raise ConfigError(f"batch_size must be a positive int or 'auto', got {value!r}")
    return size


def available(device: str | None) -> str | None:
    """lm_eval passes device="cuda:0" by default, GPU or not; like its HF model, fall back (with a warning)."""
    import torch

    if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
        print(f"unmask lm_eval model: device {device!r} requested but CUDA is not available; using the CPU",
              file=sys.stderr)
        return "cpu"
    return device


def cut_at_stops(text: str, until: list[str]) -> str:
    """`text` up to the earliest occurrence of any stop string."""
    cut = min((at for at in (text.find(s) for s in until if s) if at >= 0), default=len(text))
    return text[:cut]


def stop_strings(gen_kwargs: dict[str, Any]) -> list[str]:
    until = gen_kwargs.get("until") or []
    if isinstance(until, str):
        return [until]
    if not isinstance(until, (list, tuple)) or not all(isinstance(s, str) for s in until):
        raise ConfigError(f"generate_until: 'until' must be a string or a list of strings, got {until!r}")
    return list(until)


@register_model("unmask")
class UnmaskLM(LM):
    """lm_eval model class over `unmask.LLM` (module docstring)."""

    def __init__(self, pretrained: str = "tiny-arith", preset: str | None = None, device: str | None = None,
                 dtype: str | None = None, chat: bool = False, mc_num: int = 128, mc_batch_size: int = 32,
                 cfg: float = 0.0, greedy_check: bool = True, seed: int = 0, split_whitespace: bool = True,
                 batch_size: Any = None, max_batch_size: Any = None, **decode: Any) -> None:
        super().__init__()
        overrides = decode_overrides(decode)
        self.llm = LLM(str(pretrained), device=available(device), dtype=dtype)
        self.config = (self.llm.default_config(**overrides) if preset is None
                       else self.llm.preset_config(str(preset), **overrides))
        self.chat, self.greedy_check, self.split_whitespace = bool(chat), bool(greedy_check), bool(split_whitespace)
        self.batch_size = batch_size_of(batch_size)
        self.scorer = MonteCarloLikelihood(self.llm.logits, self.llm.spec.mask_id, mc_num=mc_num,
                                           batch_size=mc_batch_size, cfg=cfg, seed=seed)

    # ---- generation ---------------------------------------------------------------------------------
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        out: list[str] = [""] * len(requests)
        bar = progress(len(requests), "generate_until", disable=disable_tqdm)
        for indices in groups.values():
            until = stop_strings(requests[indices[0]].args[1])
            for start in range(0, len(indices), self.batch_size):
                rows = indices[start:start + self.batch_size]
                done = self.llm.generate([requests[i].args[0] for i in rows], self.config, chat=self.chat)
                for i, completion in zip(rows, done):
                    out[i] = cut_at_stops(completion.text, until)
                    self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                bar.update(len(rows))
        bar.close()
        return out

    # ---- likelihoods --------------------------------------------------------------------------------
    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation, split from one encoding (trailing spaces join the continuation)."""
        spaces = len(context) - len(context.rstrip()) if self.split_whitespace else 0
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        encode = self.llm.tokenizer.encode
        whole, prefix = encode(context + continuation), encode(context)
        return prefix, whole[len(prefix):]

    def fit_context(self, prefix: list[int], target: list[int]) -> list[int]:
        """Drop prefix tokens from the left so prefix + target fits the model's context."""
        room = self.llm.spec.context_len - len(target)
        if room < 0:
            raise ConfigError(f"a continuation of {len(target)} tokens does not fit the model's context of "
                              f"{self.llm.spec.context_len}")
        return prefix[len(prefix) - room:] if len(prefix) > room else prefix

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        bar = progress(len(requests), "loglikelihood", disable=disable_tqdm)
        for req in requests:
            prefix, target = self.encode_pair(*req.args)
            prefix = self.fit_context(prefix, target)
            logprob = self.scorer.loglikelihood(prefix, target)
            greedy = self.scorer.greedy_matches(prefix, target) if self.greedy_check else False
            out.append((logprob, greedy))
            self.cache_hook.add_partial("loglikelihood", req.args, (logprob, greedy))
            bar.update(1)
        bar.close()
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        out = []
        bos = self.llm.tokenizer.token_id(self.llm.tokenizer.bos_token)
        start = bos if bos is not None else self.llm.spec.eos_ids[0]
        bar = progress(len(requests), "loglikelihood_rolling", disable=disable_tqdm)
        for req in requests:
            tokens = self.llm.tokenizer.encode(req.args[0], add_special_tokens=False)
            windows = map(make_disjoint_window, get_rolling_token_windows(
                tokens, prefix_token=start, max_seq_len=self.llm.spec.context_len, context_len=1))
            total = sum(self.scorer.loglikelihood(list(prefix), list(target)) for prefix, target in windows)
            out.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
            bar.update(1)
        bar.close()
        return out

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.llm.tokenizer.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return str(self.llm.path)
