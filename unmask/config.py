"""DecodeConfig: one point in the decoding design space, frozen and validated at construction."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from typing import Any

from unmask.errors import ConfigError


def knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DecodeConfig:
    """How to denoise: schedule, score, token sampler, commit rule, remask rule and cache, with their knobs.

    Knob names follow the reference implementations (LLaDA `generate`, Dream `diffusion_generate`,
    Fast-dLLM). Build one with `DecodeConfig.preset(name, **overrides)` or directly.
    """

    gen_length: int = knob(128, "tokens to generate (the masked canvas length)")
    steps: int | None = knob(None, "denoising steps for quota rules (LLaDA/Dream); default gen_length")
    block_length: int | None = knob(None, "semi-autoregressive block size; default gen_length (one block)")
    schedule: str = knob("blocks", "window schedule: blocks | full")
    alg: str = knob("confidence", "score: confidence | margin | entropy | random (aliases low_confidence, "
                    "maskgit_plus, topk_margin)")
    alg_temp: float | None = knob(None, "Dream: sample positions from softmax(score / alg_temp) when > 0")
    commit: str = knob("linear", "commit rule: linear | dream | threshold | factor | entropy-threshold")
    threshold: float = knob(0.9, "threshold rule: commit scores ≥ threshold; entropy-threshold: entropy < threshold")
    factor: float = knob(1.0, "factor rule (Fast-dLLM): accept rank r while (r+1)(1-c_r) ≤ factor")
    eps: float = knob(1e-3, "Dream timestep schedule's final time")
    temperature: float = knob(0.0, "0 = argmax; > 0 = Gumbel-max sampling in float64")
    top_p: float | None = knob(None, "nucleus filter before sampling, in (0, 1]")
    top_k: int | None = knob(None, "keep the k most likely tokens before sampling")
    remask: str = knob("none", "remask rule: none")
    cache: str = knob("none", "cache: none")
    cfg_scale: float = knob(0.0, "classifier-free guidance scale (not implemented yet; must be 0)")
    confidence_fp64: bool = knob(False, "compute scores in float64 (Fast-dLLM) instead of float32 (LLaDA)")
    stop_at_eos: bool = knob(True, "stop a row once no mask remains before its first EOS")
    seed: int = knob(0, "seed of each request's own torch.Generator")

    def __post_init__(self) -> None:
        from unmask.config_checks import check_config

        check_config(self)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "DecodeConfig":
        """The published recipe `name` with `overrides` applied (validated as a whole)."""
        from unmask.presets import PRESETS

        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
        return cls.from_dict({**PRESETS[name].values, **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DecodeConfig":
        """Build from a mapping, rejecting unknown keys with the list of valid ones."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown decode setting(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(cls.field_names())}")
        return cls(**values)

    def replace(self, **overrides: Any) -> "DecodeConfig":
        return self.from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def num_steps(self) -> int:
        return self.steps if self.steps is not None else self.gen_length

    @property
    def window_length(self) -> int:
        return self.gen_length if self.schedule == "full" or self.block_length is None else self.block_length

    @property
    def num_windows(self) -> int:
        return self.gen_length // self.window_length

    @property
    def steps_per_window(self) -> int:
        return self.num_steps // self.num_windows


__all__ = ["DecodeConfig", "replace"]
