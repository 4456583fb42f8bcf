"""DecodeConfig: one point in the decoding design space, frozen and validated at construction."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from unmask.config_checks import check_config
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
    commit: str = knob("linear", "commit rule: linear | dream | threshold | factor | entropy-threshold | eb | "
                       "hierarchy | dimple | dus | cosine | klass | slowfast | remdm | learned")
    threshold: float = knob(0.9, "threshold / hierarchy rule: commit scores ≥ threshold; dimple: scores > threshold; "
                            "entropy-threshold: entropy < threshold")
    eb_gamma: float = knob(0.15, "eb (EB-Sampler): accept the lowest-entropy candidates while Σ entropy − max entropy "
                           "≤ eb_gamma nats (SGLang's default 0.15)")
    canvas_steps: int = knob(48, "uniform corruption (DiffusionGemma): most denoising steps per canvas "
                             "(max_denoising_steps)")
    t_min: float = knob(0.4, "uniform corruption (DiffusionGemma): temperature at a canvas's last denoising step; "
                        "the schedule falls linearly from t_max at its first")
    t_max: float = knob(0.8, "uniform corruption (DiffusionGemma): temperature at a canvas's first denoising step")
    stability_threshold: int = knob(1, "uniform corruption (DiffusionGemma): a canvas stops once its argmax equals "
                                    "that of the last this-many steps (0: no stability test) and it is confident")
    confidence_threshold: float = knob(0.005, "uniform corruption (DiffusionGemma): confident = mean entropy of the "
                                       "temperature-scaled logits below this (nats)")
    low_threshold: float = knob(0.4, "hierarchy (dInfer): each contiguous run of masked positions commits its best "
                                "token when its score > low_threshold")
    kl_threshold: float = knob(0.01, "klass (KLASS): a token is stable when its last kl_history KL(p_t ‖ p_t-1) are all "
                               "below this (reference: 0.01 LLaDA GSM8K, 0.001 code)")
    kl_history: int = knob(2, "klass (KLASS): how many consecutive step-to-step KLs must stay below kl_threshold")
    logits_fusion: str = knob("none", "logits fusion before proposing and scoring: none | credit (dInfer credit "
                              "decoding: logits + credit_alpha·log(1 + credit))")
    credit_alpha: float = knob(0.7, "credit (dInfer): weight α of log(1 + credit) added to the logits")
    credit_gamma: float = knob(0.2, "credit (dInfer): a masked position's top-1 token gains (top-1 probability)^γ")
    credit_beta: float = knob(0.8, "credit (dInfer): credit decays by β each step after a block's first")
    dus_base: int = knob(2, "dus (dilated unmasking): stride divisor; a block of L commits every (L/base)-th "
                         "position, then every (L/base²)-th, … (≈ log_base L steps per block)")
    sf_explore_steps: int = knob(6, "slowfast (SlowFast sampling): slow steps per sub-cycle that estimate where the "
                                 "confident span ends")
    sf_span_threshold: float = knob(0.3, "slowfast: the span ends after the farthest masked position with confidence "
                                    "≥ this")
    sf_stability_window: int = knob(2, "slowfast: how many latest span estimates must agree (std < "
                                    "sf_stability_std) to fix the span early")
    sf_stability_std: float = knob(1.0, "slowfast: the span estimates are stable when their std is below this")
    learned_filter: str | None = knob(None, "learned (Learn2PD): the commit filter: a learn2pd_filter.safetensors "
                                      "file, a directory holding one, or a bundled model's name; None = the model's own")
    filter_threshold: float | None = knob(None, "learned (Learn2PD): commit masked positions whose filter "
                                          "probability of being final is ≥ this (always the most probable one); None "
                                          "= the threshold the filter's training validated (tiny-arith's: 0.98)")
    eotp: bool = knob(False, "End-of-Text Prediction (Learn2PD): once a row's tail is EOS (committed, or predicted "
                      "with probability ≥ eotp_threshold at every masked position from there on), fill it with EOS "
                      "at once instead of decoding the padding")
    eotp_threshold: float = knob(0.9, "EoTP: the probability a masked position's EOS prediction needs to be filled")
    factor: float = knob(1.0, "factor rule (Fast-dLLM): accept rank r while (r+1)(1-c_r) ≤ factor")
    eps: float = knob(1e-3, "Dream timestep schedule's final time")
    temperature: float = knob(0.0, "0 = argmax; > 0 = Gumbel-max sampling in float64")
    logits_eos_inf: bool = knob(False, "LLaDA: set the EOS logit (the model's first eos id) to -inf before "
                                "sampling and scoring, so EOS is never proposed")
    confidence_eos_eot_inf: bool = knob(False, "LLaDA: score from the distribution without EOS and end-of-turn "
                                        "(all eos ids): a position proposing one of them scores 0 and commits last")
    top_p: float | None = knob(None, "nucleus filter before sampling, in (0, 1]")
    top_k: int | None = knob(None, "keep the k most likely tokens before sampling")
    remask: str = knob("none", "remask rule: none | low-confidence | wino | edit | remdm (reopen or edit committed "
                       "tokens of the current block)")
    remask_threshold: float = knob(0.9, "low-confidence / wino: reopen committed tokens of the current block whose "
                                   "probability under the latest forward fell below this (WINO's verify threshold)")
    remask_budget: int | None = knob(None, "low-confidence: reopen at most this many tokens per row and step "
                                     "(None: no cap beyond keeping one net commit per step)")
    edit_threshold: float = knob(0.9, "edit (LLaDA2.1 token editing): replace a committed token of the current block "
                                 "by the model's argmax when that argmax differs and its probability is above this")
    remdm_schedule: str = knob("cap", "remask remdm (ReMDM): σ_t schedule cap | rescale | conf | loop; cap σ = min(eta, "
                               "σ_max), rescale σ = eta·σ_max, conf σ_i = σ_max·softmax(−p_i), loop: remask at "
                               "constant α = alpha_on while t in (t_off, t_on]")
    eta: float = knob(0.02, "remask remdm (ReMDM): remasking strength η in [0, 1] (scripts: cap 0.008, rescale 0.015, "
                      "loop 0.02; conf ignores it)")
    t_on: float = knob(0.55, "remask remdm, schedule loop: the loop starts when t falls to t_on (α has reached alpha_on)")
    t_off: float = knob(0.05, "remask remdm, schedule loop: the loop ends at t_off (MDLM from alpha_on to 1 after)")
    alpha_on: float = knob(0.9, "remask remdm, schedule loop: the decoded fraction α held during the loop")
    cache: str = knob("none", "cache: none | prefix | dual | delayed | vicinity | feature | d2 | elastic")
    # caches: prefix / dual / delayed / vicinity
    cache_update_freq: int | None = knob(None, "prefix/dual/vicinity: also refresh every row's K/V every this many "
                                         "steps (dInfer); None = only at block starts (Fast-dLLM)")
    cache_reloading_step: int = knob(8, "delayed (dKV-Cache-Decode): full K/V refresh every this many steps")
    vicinity_size: int = knob(16, "vicinity (dInfer): neighbours refreshed on each side of the block each step")
    vicinity_warmup_steps: int = knob(4, "vicinity (dInfer): first steps run as full forwards")
    # caches: feature / d2 / elastic
    prompt_interval: int = knob(50, "feature (dLLM-Cache): refresh the prompt's features every Kp steps (LLaDA GSM8K: 50)")
    response_interval: int = knob(7, "feature (dLLM-Cache): refresh all response features every Kr steps (GSM8K: 7)")
    rho: float = knob(0.25, "feature (dLLM-Cache): fraction of response rows recomputed between refreshes (V-verify)")
    refresh_first_layer: bool = knob(True, "feature (dLLM-Cache): layer 0 recomputes every row each step, as the "
                                     "reference code does (issue #6)")
    d2_current_k: int = knob(32, "d2 (d2Cache): masked positions recomputed per step (current_k)")
    d2_sigma: float = knob(10.0, "d2 (d2Cache): Gaussian width of the certainty density (sigma)")
    rollout_p: float = knob(0.1, "d2 (d2Cache): nucleus of decoded/prompt positions by attention rollout")
    inflate_w: int = knob(0, "d2 (d2Cache): also recompute gaps of ≤ w between selected positions (4 with "
                          "parallel decoding)")
    elastic_window: int = knob(16, "elastic (Elastic-Cache): masked positions queried per step (sliding window)")
    gamma: float = knob(0.9, "elastic (Elastic-Cache): refresh deeper layers when tracked attention's cosine < gamma")
    track_num: int = knob(1, "elastic (Elastic-Cache): most-attended tokens tracked per layer for the drift test")
    cfg_scale: float = knob(0.0, "classifier-free guidance scale (LLaDA): > 0 runs an unconditional copy of each row "
                            "(prompt masked) in the same forward; logits = un + (s + 1)(cond − un); cache 'none'")
    verify: str = knob("none", "AR-verified decoding with the LLM's verifier model (LLM(model, verifier=...), "
                       "--verifier): none | apd | specdiff | guided; replaces the commit rule: left to right, the "
                       "dLLM drafts, the verifier accepts a prefix (decoding/verify.py)")
    verify_lookahead: int | None = knob(None, "verify: positions drafted per step (APD's max_lookahead M, SpecDiff's "
                                        "γ); None = the rest of the current block")
    apd_mixture_weight: float = knob(0.7, "verify apd: R in the target R·logit_dLLM + (1 − R)·logit_AR (higher = "
                                     "trusts the dLLM more, accepts more; APD's demo 0.7)")
    apd_correct: bool = knob(False, "verify apd: also write the mixture target's token at the first position where "
                             "it and the draft disagree (speculative decoding's correction token, no extra "
                             "forward); False = the paper's rule (the draft's first token always accepted)")
    guided_accept: str = knob("exact", "verify guided (FreeCache): exact (AR argmax == draft; lossless) | threshold "
                              "(or the AR's probability of the draft token ≥ guided_threshold) | topk (or the "
                              "draft token within the AR's guided_top_k)")
    guided_threshold: float = knob(0.5, "verify guided, guided_accept=threshold: the AR probability that accepts")
    guided_top_k: int = knob(2, "verify guided, guided_accept=topk: the AR top-k that accepts")
    confidence_fp64: bool = knob(False, "compute scores in float64 (Fast-dLLM) instead of float32 (LLaDA)")
    stop_at_eos: bool = knob(True, "stop a row once no mask remains before its first EOS")
    seed: int | None = knob(None, "seed of each request's own torch.Generator, in [0, 2**63): every request with "
                            "it is reproducible; None (default) = each request draws its own seed, reported in its "
                            "Completion (pass it back to reproduce that sample)")

    def __post_init__(self) -> None:
        check_config(self)

    @classmethod
    def preset(cls, name: str, defaults: Mapping[str, Any] | None = None, **overrides: Any) -> "DecodeConfig":
        """The published recipe `name`, then `defaults` (e.g. a checkpoint's own settings), then `overrides`.

        The block_length and steps of the preset and `defaults` are for their own gen_length: when `overrides`
        shortens gen_length without setting them, they are clamped to the new gen_length (only configs that
        would be invalid change: a block or a quota longer than the canvas cannot work).
        """
        from unmask.presets import PRESETS

        if not isinstance(name, str):
            raise ConfigError(f"preset must be a preset name (str), got {type(name).__name__}; "
                              f"choose one of: {', '.join(sorted(PRESETS))}")
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
        base = {**PRESETS[name].values, **cls._checked_mapping(defaults or {})}
        values = {**base, **cls._checked_mapping(overrides)}
        gen_length = values.get("gen_length")
        if isinstance(gen_length, int) and not isinstance(gen_length, bool) and gen_length > 0:
            for key in ("block_length", "steps"):
                if key not in overrides and isinstance(base.get(key), int) and base[key] > gen_length:
                    values[key] = gen_length
        return cls.from_dict(values)

    @staticmethod
    def _checked_mapping(values: Any) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise ConfigError(f"decode settings must be a mapping of field name to value, got {type(values).__name__}")
        bad = [k for k in values if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"decode setting names must be strings, got {', '.join(repr(k) for k in bad[:5])}")
        return dict(values)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DecodeConfig":
        """Build from a mapping, rejecting unknown keys with the list of valid ones."""
        values = cls._checked_mapping(values)
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
