"""Which decoding configs one bench run compares: the default list, `--preset`, `--sweep` and `--set`.

Every config is fitted to the task first: `gen_length` = the task's, `steps` = gen_length for the quota
rules (one token per step), and `block_length` = 16 when 16 divides gen_length, else gen_length (one
block). `--set key=value` is applied last, to every config; `--sweep key=v1,v2` turns each listed
config into one config per value (several sweeps multiply). `--sweep preset:key=v1,v2` sweeps only the
configs of that preset (its family: "fast-dllm t=0.7" is fast-dllm's, "k=4" llada's), so one run can hold
two rules' fronts, e.g. `--preset fast-dllm,learn2pd --sweep fast-dllm:threshold=0.8,0.9 --sweep
learn2pd:filter_threshold=0.95,0.98`. A key is swept either for every preset or per preset, not both.

The baseline, `llada` at one token per step, is always measured first in the same run with the same
`--set` (never swept) unless `baseline=False` (`--no-baseline`).

The default list (no `--preset`) tells the story of parallel decoding on one small model:
- `llada`: the baseline, 1 token per step (steps = gen_length);
- `k=2`, `k=4`, `k=8`, `k=16`: LLaDA's linear quota with exactly k tokens per step (steps = gen_length / k).
  Tokens committed together are sampled independently, so accuracy falls as k grows (the "curse" of
  parallel decoding); a k larger than the block uses block_length = k;
- `one-shot`: every token in a single forward (k = gen_length);
- `fast-dllm t=0.9` / `t=0.7` / `t=0.5`: Fast-dLLM confidence-threshold decoding (arXiv 2505.22618), which
  commits many tokens only where the model is sure, keeping accuracy near the baseline at far fewer NFE;
- `fast-dllm-factor`: Fast-dLLM's factor rule (factor 1).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from unmask.config import DecodeConfig
from unmask.errors import ConfigError
from unmask.presets import PRESETS
from unmask.settings import parse_assignments, parse_field, split_assignment  # noqa: F401  (re-exported)

DEFAULT_BLOCK_LENGTH = 16
FIXED_KS = (2, 4, 8, 16)
THRESHOLDS = (0.9, 0.7, 0.5)
QUOTA_RULES = ("linear", "dream", "dimple", "klass", "remdm")
BASELINE = "llada"

Config = tuple[str, DecodeConfig]  # (label, config)


def split_scope(key: str) -> tuple[str | None, str]:
    """"learn2pd:filter_threshold" → ("learn2pd", "filter_threshold"); "threshold" → (None, "threshold")."""
    scope, sep, name = key.rpartition(":")
    return (scope, name) if sep else (None, key)


def parse_sweeps(items: list[str] | None) -> dict[str, list[Any]]:
    """["threshold=0.7,0.9", "learn2pd:filter_threshold=0.95"] → {"threshold": [0.7, 0.9],
    "learn2pd:filter_threshold": [0.95]}: a key with a preset before ':' sweeps that preset's configs only."""
    sweeps: dict[str, list[Any]] = {}
    for item in items or []:
        key, value = split_assignment(item, "--sweep")
        scope, name = split_scope(key)
        name = name.strip().replace("-", "_")
        if scope is not None and (not scope.strip() or not name):
            raise ConfigError(f"--sweep {item!r}: write preset:key=v1,v2 (a preset and a key around ':')")
        if scope is not None and scope.strip() not in PRESETS:
            raise ConfigError(f"--sweep {item!r}: unknown preset {scope!r}; choose from: {', '.join(sorted(PRESETS))}")
        key = name if scope is None else f"{scope.strip()}:{name}"
        if key in sweeps:
            raise ConfigError(f"--sweep {key} is given twice; list all its values in one flag: {key}=v1,v2")
        parts = [v for v in value.split(",") if v.strip()]
        if not parts:
            raise ConfigError(f"--sweep expects key=v1,v2,…, got {item!r}")
        sweeps[key] = [parse_field(name, v, "--sweep") for v in parts]
    check_sweep_keys(sweeps)
    return sweeps


def check_sweep_keys(sweeps: dict[str, list[Any]]) -> None:
    """A key swept for every preset must not also be swept per preset (which values would a config take?)."""
    every = {key for key in sweeps if split_scope(key)[0] is None}
    for key in sweeps:
        scope, name = split_scope(key)
        if scope is not None and name in every:
            raise ConfigError(f"--sweep {name} is given both for every preset and for {scope}; sweep it per "
                              f"preset ({scope}:{name}=…) or for all, not both")


def parse_presets(text: str | None) -> list[str] | None:
    """"llada,fast-dllm" → ["llada", "fast-dllm"], checked against PRESETS; None or "" → None (default list)."""
    if not text or not text.strip():
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ConfigError(f"unknown preset(s) {', '.join(unknown)}; choose from: {', '.join(sorted(PRESETS))}")
    return names


def default_block_length(gen_length: int) -> int:
    return DEFAULT_BLOCK_LENGTH if gen_length % DEFAULT_BLOCK_LENGTH == 0 else gen_length


def fitted(preset: str, gen_length: int, block_length: int, **values: Any) -> dict[str, Any]:
    """The preset's values with gen_length, block_length and (quota rules) steps fitted to the task."""
    base = dict(PRESETS[preset].values)
    base["gen_length"] = gen_length
    if base.get("block_length") is not None:   # whole-sequence presets (block_length None) stay whole-sequence
        base["block_length"] = block_length
    if base.get("commit", "linear") in QUOTA_RULES:
        base["steps"] = gen_length
    return {**base, **values}


def default_list(gen_length: int, block_length: int) -> list[tuple[str, dict[str, Any]]]:
    """The story configs (module docstring), baseline excluded, as (label, values)."""
    rows = []
    for k in FIXED_KS:
        if gen_length % k == 0 and k < gen_length:
            block = block_length if block_length % k == 0 else k
            rows.append((f"k={k}", fitted("llada", gen_length, block, steps=gen_length // k)))
    rows.append(("one-shot", fitted("llada", gen_length, gen_length, steps=1)))
    rows += [(f"fast-dllm t={t}", fitted("fast-dllm", gen_length, block_length, threshold=t)) for t in THRESHOLDS]
    rows.append(("fast-dllm-factor", fitted("fast-dllm-factor", gen_length, block_length)))
    return rows


def family_of(label: str) -> str:
    """The preset a config's label came from: "fast-dllm t=0.7" → "fast-dllm"; "k=4", "one-shot" → "llada"."""
    head = label.split(" ")[0]
    return BASELINE if head.startswith("k=") or head == "one-shot" else head


def build(label: str, values: dict[str, Any]) -> DecodeConfig:
    try:
        return DecodeConfig.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"config {label!r}: {err}") from None


@dataclass(frozen=True)
class BenchSpec:
    """What to compare: presets (None = the default list), sweeps, overrides (`--set`), and the baseline."""

    presets: list[str] | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    baseline: bool = True

    def configs(self, task_gen_length: int) -> list[Config]:
        """Every (label, DecodeConfig) of the run, baseline first; raises ConfigError naming the bad config."""
        check_sweep_keys(self.sweep)
        both = sorted({split_scope(key)[1] for key in self.sweep} & set(self.overrides))
        if both:
            raise ConfigError(f"{', '.join(both)} given both in --set and --sweep; use one of them")
        out: list[Config] = []
        if self.baseline:
            gen, block = self._shape({}, task_gen_length)
            out.append((BASELINE, build(BASELINE, {**fitted(BASELINE, gen, block), **self.overrides})))
        shared = self._points(None)
        labels = list(dict.fromkeys(label for point in shared for label in self._listed(
            *self._shape(point, task_gen_length))))
        self._check_scopes(labels)
        for label in labels:  # preset-major: each preset's sweep points stay together
            for point in (p | own for p in shared for own in self._points(family_of(label))):
                rows = self._listed(*self._shape(point, task_gen_length))
                if label not in rows:
                    continue
                name = " ".join([label, *(f"{k}={v}" for k, v in point.items())])
                config = build(name, {**rows[label], **point, **self.overrides})
                if all(config != seen for _, seen in out):
                    out.append((name, config))
        if not out:
            raise ConfigError("nothing to run: no preset given and the baseline is off")
        return out

    def _check_scopes(self, labels: list[str]) -> None:
        """Every preset a scoped sweep names is one of the run's (else the sweep would silently do nothing)."""
        families = list(dict.fromkeys(family_of(label) for label in labels))
        for key in self.sweep:
            scope, name = split_scope(key)
            if scope is not None and scope not in families:
                raise ConfigError(f"--sweep {key}: preset {scope!r} is not in this run (its presets: "
                                  f"{', '.join(families) or 'none'}); add it with --preset")

    def _shape(self, point: dict[str, Any], task_gen_length: int) -> tuple[int, int]:
        """(gen_length, block_length) for one sweep point: --set / --sweep values, else the task's and the default."""
        user = {**point, **self.overrides}
        gen = user.get("gen_length", task_gen_length)
        block = user.get("block_length") or default_block_length(gen)
        for name, value in (("gen_length", gen), ("block_length", block)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        return gen, block

    def _listed(self, gen: int, block: int) -> dict[str, dict[str, Any]]:
        rows = [(name, fitted(name, gen, block)) for name in self.presets] if self.presets is not None \
            else default_list(gen, block)
        return dict(rows)

    def _points(self, scope: str | None) -> list[dict[str, Any]]:
        """The sweep points of the keys swept for every preset (scope None) or for the preset `scope` only."""
        keys = [key for key in self.sweep if split_scope(key)[0] == scope]
        names = [split_scope(key)[1] for key in keys]
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.sweep[k] for k in keys))]
