"""Presets: the published decoding recipes, as plain data. `DecodeConfig.preset(name, **overrides)`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    values: dict[str, Any]
    paper: str
    summary: str
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "llada": Preset(
        {"gen_length": 128, "steps": 128, "block_length": 32, "commit": "linear", "alg": "confidence"},
        "arXiv 2502.09992 (LLaDA)",
        "reference LLaDA sampler: fixed quota per step, low-confidence order, semi-AR blocks"),
    "dream": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "dream", "alg": "entropy"},
        "arXiv 2508.15487 (Dream 7B)",
        "Dream diffusion_generate: timestep quota, entropy order, whole sequence"),
    "fast-dllm": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "confidence_fp64": True},
        "arXiv 2505.22618 (Fast-dLLM)",
        "confidence-threshold parallel decoding, block 32"),
    "fast-dllm-factor": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "factor", "factor": 1.0, "alg": "confidence",
         "confidence_fp64": True},
        "arXiv 2505.22618 (Fast-dLLM)",
        "factor rule: accept rank r while (r+1)(1-c_r) <= factor, block 32"),
    "dparallel": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "entropy-threshold", "threshold": 0.5, "alg": "entropy"},
        "arXiv 2509.26488 (dParallel)",
        "entropy-threshold decoding (commit tokens below 0.5 nats), block 32"),
}
