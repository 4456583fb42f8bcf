"""Validation of DecodeConfig: each field, then fields against each other. Errors name field, value, allowed."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unmask.errors import ConfigError

if TYPE_CHECKING:
    from unmask.config import DecodeConfig

TYPES = {"gen_length": int, "steps": (int, type(None)), "block_length": (int, type(None)), "schedule": str,
         "alg": str, "alg_temp": (float, int, type(None)), "commit": str, "threshold": (float, int),
         "factor": (float, int), "eps": (float, int), "temperature": (float, int), "top_p": (float, int, type(None)),
         "top_k": (int, type(None)), "remask": str, "cache": str, "cfg_scale": (float, int),
         "confidence_fp64": bool, "stop_at_eos": bool, "seed": int}
# caches: prefix / dual / delayed / vicinity
TYPES.update({"cache_update_freq": (int, type(None)), "cache_reloading_step": int, "vicinity_size": int,
              "vicinity_warmup_steps": int})
# caches: feature / d2 / elastic
TYPES.update({"prompt_interval": int, "response_interval": int, "rho": (float, int), "refresh_first_layer": bool,
              "d2_current_k": int, "d2_sigma": (float, int), "rollout_p": (float, int), "inflate_w": int,
              "elastic_window": int, "gamma": (float, int), "track_num": int})
BLOCK_CACHES = ("prefix", "dual", "vicinity")  # refresh at block starts: need the blocks/full schedule
QUOTA_RULES = ("linear", "dream")


def _check_types(cfg: "DecodeConfig") -> None:
    for name, kind in TYPES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise ConfigError(f"{name} has the wrong type: got {value!r} ({type(value).__name__})")


def _check_names(cfg: "DecodeConfig") -> None:
    from unmask.cache import CACHES
    from unmask.decoding import COMMIT, REMASK, SCHEDULES, SCORES, canonical_alg

    for registry, value in ((SCHEDULES, cfg.schedule), (SCORES, canonical_alg(cfg.alg)), (COMMIT, cfg.commit),
                            (REMASK, cfg.remask), (CACHES, cfg.cache)):
        registry.get(value)  # raises ConfigError listing the valid names


def _positive(name: str, value: Any) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def _check_ranges(cfg: "DecodeConfig") -> None:
    for name in ("gen_length", "steps", "block_length", "top_k", "factor", "eps"):
        _positive(name, getattr(cfg, name))
    if cfg.temperature < 0:
        raise ConfigError(f"temperature must be ≥ 0, got {cfg.temperature}")
    if cfg.top_p is not None and not 0 < cfg.top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {cfg.top_p}")
    if cfg.alg_temp is not None and cfg.alg_temp < 0:
        raise ConfigError(f"alg_temp must be ≥ 0, got {cfg.alg_temp}")
    if cfg.eps >= 1:
        raise ConfigError(f"eps must be in (0, 1), got {cfg.eps}")
    if cfg.cfg_scale != 0:
        raise ConfigError(f"cfg_scale={cfg.cfg_scale}: classifier-free guidance is not implemented yet; use 0")


def _check_combinations(cfg: "DecodeConfig") -> None:
    if cfg.gen_length % cfg.window_length:
        raise ConfigError(f"gen_length ({cfg.gen_length}) must be a multiple of block_length ({cfg.window_length})")
    if cfg.commit in QUOTA_RULES:
        if cfg.num_steps % cfg.num_windows:
            raise ConfigError(f"steps ({cfg.num_steps}) must be a multiple of the number of blocks "
                              f"({cfg.num_windows} = gen_length {cfg.gen_length} / block_length {cfg.window_length})")
        if cfg.steps_per_window > cfg.window_length:
            raise ConfigError(f"{cfg.steps_per_window} steps per block cannot each commit a token of a "
                              f"{cfg.window_length}-token block; lower steps to ≤ {cfg.gen_length}")
    if cfg.commit == "entropy-threshold" and cfg.alg != "entropy":
        raise ConfigError(f"commit 'entropy-threshold' needs alg='entropy', got alg={cfg.alg!r}")
    if cfg.alg_temp and cfg.commit != "dream":
        raise ConfigError(f"alg_temp samples positions under Dream's quota rule; set commit='dream' "
                          f"(got {cfg.commit!r}) or alg_temp=None")
    if cfg.commit == "threshold" and cfg.threshold <= 0:
        raise ConfigError(f"threshold must be > 0, got {cfg.threshold}")


def _check_caches(cfg: "DecodeConfig") -> None:
    """caches: prefix / dual / delayed / vicinity."""
    for name in ("cache_update_freq", "cache_reloading_step"):
        _positive(name, getattr(cfg, name))
    for name in ("vicinity_size", "vicinity_warmup_steps"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be ≥ 0, got {getattr(cfg, name)}")
    if cfg.cache in BLOCK_CACHES and cfg.schedule not in ("blocks", "full"):
        raise ConfigError(f"cache {cfg.cache!r} refreshes at block starts and needs schedule 'blocks' or 'full', "
                          f"got {cfg.schedule!r}")
    if cfg.cache in ("dual", "vicinity") and cfg.num_windows < 2:
        raise ConfigError(f"cache {cfg.cache!r} caches the masked suffix after the current block, but with one block "
                          f"(block_length {cfg.window_length} = gen_length {cfg.gen_length}) there is no suffix; "
                          f"set block_length < gen_length or use cache='prefix'")
    if cfg.cache in BLOCK_CACHES + ("delayed",) and cfg.remask != "none":
        raise ConfigError(f"cache {cfg.cache!r} assumes committed tokens stay committed; remask {cfg.remask!r} "
                          f"reopens them (use cache='none')")


def _check_adaptive_caches(cfg: "DecodeConfig") -> None:
    """caches: feature / d2 / elastic."""
    for name in ("prompt_interval", "response_interval", "d2_current_k", "elastic_window", "track_num"):
        _positive(name, getattr(cfg, name))
    for name in ("rho", "rollout_p", "gamma"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ConfigError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    if cfg.d2_sigma < 0 or cfg.inflate_w < 0:
        raise ConfigError(f"d2_sigma and inflate_w must be ≥ 0, got {cfg.d2_sigma} and {cfg.inflate_w}")


def check_config(cfg: "DecodeConfig") -> None:
    _check_types(cfg)
    _check_names(cfg)
    _check_ranges(cfg)
    _check_combinations(cfg)
    _check_caches(cfg)
    _check_adaptive_caches(cfg)
