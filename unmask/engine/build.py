"""DecodeConfig → the objects of one decode: schedule, score, token sampler, commit, remask and cache.

Each class is built from the config fields named like its constructor parameters, so a new method needs
no change here: give its class knobs named like DecodeConfig fields and register it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from unmask.cache import CACHES, Cache
from unmask.config import DecodeConfig
from unmask.decoding import (COMMIT, REMASK, SCHEDULES, SCORES, CommitPolicy, RemaskPolicy, Schedule, Score,
                             TokenSampler, canonical_alg)
from unmask.decoding.eotp import EndOfText
from unmask.decoding.fusion import FUSION, LogitsFusion, NoFusion
from unmask.decoding.guidance import ClassifierFreeGuidance, Guidance
from unmask.decoding.latent import LatentDraw
from unmask.decoding.verify import VERIFY
from unmask.engine.autoregressive import ARModel
from unmask.engine.guided import PairedCache
from unmask.engine.verify import VerifyStep
from unmask.errors import ConfigError
from unmask.models.spec import DiffusionSpec


@dataclass
class DecodeParts:
    schedule: Schedule
    score: Score
    sampler: TokenSampler
    commit: CommitPolicy
    remask: RemaskPolicy
    cache: Cache
    generators: list[torch.Generator]
    stop_at_eos: bool
    guidance: Guidance | None = None
    fusion: LogitsFusion = NoFusion()
    eotp: EndOfText | None = None
    verify: VerifyStep | None = None   # AR-verified decoding: decides the commits instead of `commit`
    latent: LatentDraw | None = None   # a λ-conditioned model (Di4C student): λ per row per step


def construct(cls: type, cfg: DecodeConfig, **context: Any) -> Any:
    """Call cls(...) with each parameter taken from `context`, else from the config field of that name."""
    kwargs = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in context:
            kwargs[name] = context[name]
        elif hasattr(cfg, name):
            kwargs[name] = getattr(cfg, name)
    return cls(**kwargs)


def build_cache(cfg: DecodeConfig, context: dict[str, Any]) -> Cache:
    """The group's cache; with guidance each row's copy gets cache rows of its own (engine/guided.py)."""
    cache = construct(CACHES.get(cfg.cache), cfg, **context)
    return PairedCache(cache) if cfg.cfg_scale > 0 else cache


def build_verify(cfg: DecodeConfig, verifier: ARModel | None, sampler: TokenSampler) -> VerifyStep | None:
    """The verify step of `cfg.verify` on the engine's verifier model (None for verify='none')."""
    if cfg.verify == "none":
        return None
    if verifier is None:
        raise ConfigError(f"verify={cfg.verify!r} needs a verifier model: LLM(model, verifier=...) or --verifier")
    return VerifyStep(construct(VERIFY.get(cfg.verify), cfg), verifier, cfg.verify_lookahead, sampler)


def build_parts(cfg: DecodeConfig, spec: DiffusionSpec, generators: list[torch.Generator],
                learned_filter: object | None = None, verifier: ARModel | None = None) -> DecodeParts:
    """The parts of one group. `generators` is the group's per-row list; the engine edits it in place as
    rows join and leave, so parts that hold it (Dream's position sampling) always see the current rows.
    `learned_filter`: the loaded Learn2PD head for commit 'learned' (engine/filters.py); `verifier`: the
    engine's AR model, used when cfg.verify names a rule."""
    context = {"steps_per_window": cfg.steps_per_window, "block_length": cfg.window_length,
               "generators": generators, "spec": spec, "fp64": cfg.confidence_fp64}
    if learned_filter is not None:
        context["learned_filter"] = learned_filter
    sampler = TokenSampler.from_config(cfg, spec)
    return DecodeParts(
        schedule=construct(SCHEDULES.get(cfg.schedule), cfg, **context),
        score=construct(SCORES.get(canonical_alg(cfg.alg)), cfg, **context),
        sampler=sampler,
        commit=construct(COMMIT.get(cfg.commit), cfg, **context),
        remask=construct(REMASK.get(cfg.remask), cfg, **context),
        cache=build_cache(cfg, context),
        generators=generators, stop_at_eos=cfg.stop_at_eos,
        guidance=ClassifierFreeGuidance(cfg.cfg_scale, spec.mask_id) if cfg.cfg_scale > 0 else None,
        fusion=construct(FUSION.get(cfg.logits_fusion), cfg, **context),
        eotp=EndOfText(cfg.eotp_threshold) if cfg.eotp else None,
        verify=build_verify(cfg, verifier, sampler),
        latent=LatentDraw() if spec.latent_conditioned else None)
