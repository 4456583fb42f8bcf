"""Validation of DecodeConfig: each field, then fields against each other, then each chosen method's own
constraints (declared beside its class as `check_config`). Errors name field, value, allowed.

Every number is checked here and only here: types (bools are not numbers), every float knob finite and in the
range of `FLOAT_RANGES`, every int knob in `INT_RANGES` (or positive / non-negative) and below `MAX_INT`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from unmask.errors import ConfigError

if TYPE_CHECKING:
    from unmask.config import DecodeConfig

TYPES = {"gen_length": int, "steps": (int, type(None)), "block_length": (int, type(None)), "schedule": str,
         "alg": str, "alg_temp": (float, int, type(None)), "commit": str, "threshold": (float, int),
         "factor": (float, int), "eps": (float, int), "temperature": (float, int), "top_p": (float, int, type(None)),
         "top_k": (int, type(None)), "remask": str, "cache": str, "cfg_scale": (float, int),
         "remask_threshold": (float, int), "remask_budget": (int, type(None)), "edit_threshold": (float, int),
         "confidence_fp64": bool, "stop_at_eos": bool, "seed": (int, type(None))}
# commit rules: eb / hierarchy / dus; LLaDA's EOS options
TYPES.update({"kl_threshold": (float, int), "kl_history": int, "logits_fusion": str, "credit_alpha": (float, int),
              "credit_gamma": (float, int), "credit_beta": (float, int)})
TYPES.update({"eb_gamma": (float, int), "low_threshold": (float, int), "dus_base": int, "logits_eos_inf": bool,
              "confidence_eos_eot_inf": bool})
# caches: prefix / dual / delayed / vicinity
TYPES.update({"cache_update_freq": (int, type(None)), "cache_reloading_step": int, "vicinity_size": int,
              "vicinity_warmup_steps": int})
# caches: feature / d2 / elastic
TYPES.update({"prompt_interval": int, "response_interval": int, "rho": (float, int), "refresh_first_layer": bool,
              "d2_current_k": int, "d2_sigma": (float, int), "rollout_p": (float, int), "inflate_w": int,
              "elastic_window": int, "gamma": (float, int), "track_num": int})
# remask remdm (ReMDM)
TYPES.update({"remdm_schedule": str, "eta": (float, int), "t_on": (float, int), "t_off": (float, int),
              "alpha_on": (float, int)})
# commit slowfast (SlowFast sampling)
TYPES.update({"sf_explore_steps": int, "sf_span_threshold": (float, int), "sf_stability_window": int,
              "sf_stability_std": (float, int)})
# commit learned (Learn2PD) and End-of-Text Prediction
TYPES.update({"learned_filter": (str, type(None)), "filter_threshold": (float, int, type(None)), "eotp": bool,
              "eotp_threshold": (float, int)})
# uniform corruption (DiffusionGemma)
TYPES.update({"canvas_steps": int, "t_min": (float, int), "t_max": (float, int), "stability_threshold": int,
              "confidence_threshold": (float, int)})
# AR-verified decoding (APD, SpecDiff, FreeCache guided diffusion)
TYPES.update({"verify": str, "verify_lookahead": (int, type(None)), "apd_mixture_weight": (float, int),
              "apd_correct": bool, "guided_accept": str, "guided_threshold": (float, int), "guided_top_k": int})
MAX_TEMPERATURE = 100.0  # softmax(logits / T) is already uniform to float precision long before this
MAX_INT = 2**31 - 1  # no size or count knob is meaningful beyond this (tensors are indexed with int32 here and there)
MAX_SEED = 2**63  # torch.Generator.manual_seed takes a signed 64-bit seed
# float knob -> (low, low included, high, high included); None = unbounded on that side. NaN and inf always fail.
FLOAT_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "temperature": (0.0, True, MAX_TEMPERATURE, True), "alg_temp": (0.0, True, MAX_TEMPERATURE, True),
    "top_p": (0.0, False, 1.0, True), "threshold": (0.0, False, None, False), "factor": (0.0, False, None, False),
    "eps": (0.0, False, 1.0, False), "cfg_scale": (0.0, True, None, False), "rho": (0.0, True, 1.0, True),
    "rollout_p": (0.0, True, 1.0, True), "gamma": (0.0, True, 1.0, True), "d2_sigma": (0.0, True, None, False),
    "remask_threshold": (0.0, False, 1.0, True), "edit_threshold": (0.0, False, 1.0, True),
    "kl_threshold": (0.0, False, None, False), "credit_alpha": (0.0, True, None, False),
    "credit_gamma": (0.0, True, None, False), "credit_beta": (0.0, True, 1.0, True),
    "eb_gamma": (0.0, True, None, False), "low_threshold": (0.0, True, None, False),
    "eta": (0.0, True, 1.0, True), "t_on": (0.0, False, 1.0, False), "t_off": (0.0, True, 1.0, False),
    "alpha_on": (0.0, False, 1.0, False), "sf_span_threshold": (0.0, True, 1.0, True),
    "sf_stability_std": (0.0, False, None, False), "t_min": (0.0, True, MAX_TEMPERATURE, True),
    "t_max": (0.0, False, MAX_TEMPERATURE, True), "confidence_threshold": (0.0, False, None, False),
    "filter_threshold": (0.0, False, 1.0, True), "eotp_threshold": (0.0, False, 1.0, True),
    "apd_mixture_weight": (0.0, True, 1.0, True), "guided_threshold": (0.0, False, 1.0, True)}
POSITIVE_INTS = ("gen_length", "steps", "block_length", "top_k", "remask_budget", "cache_update_freq", "cache_reloading_step",
                 "prompt_interval", "response_interval", "d2_current_k", "elastic_window", "track_num", "dus_base", "kl_history",
                 "sf_explore_steps", "sf_stability_window", "canvas_steps", "verify_lookahead",
                 "guided_top_k")
NON_NEGATIVE_INTS = ("vicinity_size", "vicinity_warmup_steps", "inflate_w", "stability_threshold")


def _check_types(cfg: "DecodeConfig") -> None:
    for name, kind in TYPES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise ConfigError(f"{name} has the wrong type: got {short(value)} ({type(value).__name__})")


def _check_names(cfg: "DecodeConfig") -> None:
    from unmask.cache import CACHES
    from unmask.decoding import COMMIT, REMASK, SCHEDULES, SCORES, canonical_alg

    for registry, value in ((SCHEDULES, cfg.schedule), (SCORES, canonical_alg(cfg.alg)), (COMMIT, cfg.commit),
                            (REMASK, cfg.remask), (CACHES, cfg.cache)):
        registry.get(value)  # raises ConfigError listing the valid names


def short(value: Any) -> str:
    """repr(value), cut to 40 characters (a 400-digit int would otherwise fill the terminal)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text)} characters)"


def _interval(low: float | None, low_in: bool, high: float | None, high_in: bool) -> str:
    if high is None:
        return f"a finite number {'≥' if low_in else '>'} {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_float(name: str, value: float | None) -> None:
    """`value` (None passes) is finite and within FLOAT_RANGES[name]; else ConfigError naming the field."""
    if value is None:
        return
    low, low_in, high, high_in = FLOAT_RANGES[name]
    try:
        x = float(value)
    except OverflowError:  # an int beyond float range
        x = math.inf
    inside = math.isfinite(x) and (low is None or x > low or (low_in and x == low)) and (
        high is None or x < high or (high_in and x == high))
    if not inside:
        hint = " (higher temperatures are indistinguishable from uniform sampling)" if (
            name in ("temperature", "alg_temp") and x > MAX_TEMPERATURE) else ""
        raise ConfigError(f"{name} must be {_interval(low, low_in, high, high_in)}, got {short(value)}{hint}")


def _check_ranges(cfg: "DecodeConfig") -> None:
    for name in FLOAT_RANGES:
        check_float(name, getattr(cfg, name))
    for name in POSITIVE_INTS + NON_NEGATIVE_INTS:
        value = getattr(cfg, name)
        if value is None:
            continue
        if value < (1 if name in POSITIVE_INTS else 0):
            raise ConfigError(f"{name} must be {'> 0' if name in POSITIVE_INTS else '≥ 0'}, got {value}")
        if value > MAX_INT:
            raise ConfigError(f"{name}={short(value)} is absurdly large (the limit is {MAX_INT})")
    if cfg.seed is not None and not 0 <= cfg.seed < MAX_SEED:
        raise ConfigError(f"seed must be None (a random seed per request) or an int in [0, 2**63), got {short(cfg.seed)}")


def _check_combinations(cfg: "DecodeConfig") -> None:
    if cfg.gen_length % cfg.window_length:
        raise ConfigError(f"gen_length ({cfg.gen_length}) must be a multiple of block_length ({cfg.window_length})")
    if cfg.remdm_schedule not in ("cap", "rescale", "conf", "loop"):
        raise ConfigError(f"unknown remdm_schedule {short(cfg.remdm_schedule)}; choose one of: cap, rescale, conf, loop")
    if cfg.t_off >= cfg.t_on:
        raise ConfigError(f"t_off ({cfg.t_off}) must be below t_on ({cfg.t_on}): ReMDM's loop runs for t in "
                          f"(t_off, t_on]")
    if cfg.eotp and cfg.remask != "none":
        raise ConfigError(f"eotp fills a row's EOS tail as final tokens, which remask {cfg.remask!r} could reopen or "
                          f"edit; use remask='none' with eotp")
    if cfg.alg_temp and cfg.commit != "dream":
        raise ConfigError(f"alg_temp samples positions under Dream's quota rule; set commit='dream' "
                          f"(got {cfg.commit!r}) or alg_temp=None")


def _check_methods(cfg: "DecodeConfig") -> None:
    """Each chosen method's own constraints, declared beside its class (`check_config` classmethods)."""
    from unmask.cache import CACHES
    from unmask.decoding import COMMIT, REMASK
    from unmask.decoding.fusion import FUSION

    FUSION.get(cfg.logits_fusion)

    COMMIT.get(cfg.commit).check_config(cfg)
    _check_verify(cfg)
    REMASK.get(cfg.remask).check_config(cfg)
    CACHES.get(cfg.cache).check_config(cfg)


def _check_verify(cfg: "DecodeConfig") -> None:
    """A verify rule decides the commits itself, left to right: no remask rule, guidance or logits fusion."""
    from unmask.decoding.verify import GUIDED_ACCEPT, VERIFY

    if cfg.guided_accept not in GUIDED_ACCEPT:
        raise ConfigError(f"unknown guided_accept {short(cfg.guided_accept)}; choose one of: {', '.join(GUIDED_ACCEPT)}")
    if cfg.verify == "none":
        return
    if cfg.verify not in VERIFY:
        raise ConfigError(f"unknown verify rule {short(cfg.verify)}; choose one of: none, {', '.join(VERIFY.names())}")
    clashes = [f"{name}={short(getattr(cfg, name))}" for name, off in (("remask", "none"), ("cfg_scale", 0),
                                                                    ("logits_fusion", "none"))
               if getattr(cfg, name) != off]
    if clashes:
        raise ConfigError(f"verify={cfg.verify!r} accepts a left-to-right prefix of the draft each step; it does not "
                          f"combine with {', '.join(clashes)}")
    VERIFY.get(cfg.verify).check_config(cfg)


def check_config(cfg: "DecodeConfig") -> None:
    _check_types(cfg)
    _check_names(cfg)
    _check_ranges(cfg)
    _check_combinations(cfg)
    _check_methods(cfg)
