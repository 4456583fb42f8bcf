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
         "confidence_fp64": True, "cache": "prefix"},
        "arXiv 2505.22618 (Fast-dLLM)",
        "confidence-threshold parallel decoding + PrefixCache refreshed at each block start, block 32"),
    "fast-dllm-dual": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "confidence_fp64": True, "cache": "dual"},
        "arXiv 2505.22618 (Fast-dLLM)",
        "confidence-threshold parallel decoding + DualCache (prefix and masked suffix cached), block 32"),
    "dkv-cache": Preset(
        {"gen_length": 128, "steps": 128, "block_length": 64, "commit": "linear", "alg": "confidence",
         "cache": "delayed", "cache_reloading_step": 8},
        "arXiv 2505.15781 (dKV-Cache)",
        "dKV-Cache-Decode: K/V cached one step after decoding, refresh every 8 steps; LLaDA quota, block 64"),
    "dllm-cache": Preset(
        {"gen_length": 256, "steps": 256, "block_length": 8, "commit": "linear", "alg": "confidence",
         "cache": "feature", "prompt_interval": 50, "response_interval": 7, "rho": 0.25, "refresh_first_layer": True},
        "arXiv 2506.06295 (dLLM-Cache)",
        "LLaDA-Instruct GSM8K script: feature cache Kp=50, Kr=7, V-verify rho=0.25; LLaDA quota, block 8"),
    "d2cache": Preset(
        {"gen_length": 256, "steps": 256, "block_length": 32, "commit": "linear", "alg": "confidence",
         "cache": "d2", "d2_current_k": 32, "d2_sigma": 10.0, "rollout_p": 0.1, "inflate_w": 0},
        "arXiv 2509.23094 (d2Cache)",
        "d2Cache configs/cache/d2cache.yaml: current_k 32, sigma 10, rollout_p 0.1; LLaDA quota, block 32"),
    "fast-dllm-factor": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "factor", "factor": 1.0, "alg": "confidence",
         "confidence_fp64": True},
        "arXiv 2505.22618 (Fast-dLLM)",
        "factor rule: accept rank r while (r+1)(1-c_r) <= factor, block 32"),
    "dparallel": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "entropy-threshold", "threshold": 0.5, "alg": "entropy"},
        "arXiv 2509.26488 (dParallel)",
        "entropy-threshold decoding (commit tokens below 0.5 nats), block 32"),
    "elastic-cache": Preset(
        {"gen_length": 512, "schedule": "full", "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "cache": "elastic", "elastic_window": 16, "gamma": 0.9, "track_num": 1},
        "arXiv 2510.14973 (Elastic-Cache)",
        "Elastic-Cache GSM8K script: sliding window 16, threshold 0.9, drift gamma 0.9, 1 tracked token per layer"),
    "eb-sampler": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "eb", "eb_gamma": 0.15, "alg": "entropy"},
        "arXiv 2505.24857 (EB-Sampler)",
        "entropy-bounded unmasking: lowest-entropy tokens while Σ H − max H ≤ 0.15 nats (SGLang default), block 32"),
    "diffusion-gemma": Preset(
        {"gen_length": 256, "canvas_steps": 48, "commit": "eb", "eb_gamma": 0.1, "alg": "entropy", "t_min": 0.4,
         "t_max": 0.8, "stability_threshold": 1, "confidence_threshold": 0.005},
        "DiffusionGemma (transformers DiffusionGemmaGenerationConfig defaults)",
        "uniform corruption: random canvas of 256, ≤ 48 steps per canvas, entropy bound 0.1, temperature 0.8 → 0.4, "
        "stop when stable and confident; renoise the rest"),
    "dinfer-hierarchy": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "hierarchy", "threshold": 0.9, "low_threshold": 0.4,
         "alg": "confidence"},
        "arXiv 2510.08666 (dInfer)",
        "hierarchical decoding: ≥ 0.9 plus the best of each contiguous masked run above 0.4, block 32"),
    "dimple": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "dimple", "threshold": 0.95,
         "alg": "confidence"},
        "arXiv 2505.16990 (Dimple)",
        "confident decoding: every token with confidence > 0.95, else Dream's timestep quota; whole sequence"),
    "dus": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "dus", "dus_base": 2, "alg": "confidence"},
        "arXiv 2506.19037 (DUS)",
        "dilated unmasking: fixed coarse-to-fine strides 16, 8, 4, 2, 1 → 5 steps per 32-token block"),
    "maskgit-cosine": Preset(
        {"gen_length": 128, "steps": 32, "block_length": 32, "commit": "cosine", "alg": "confidence"},
        "arXiv 2202.04200 (MaskGIT)",
        "cosine quota: step i of S leaves floor(n·cos(π/2·(i+1)/S)) masked; 8 steps per 32-token block"),
    "wino": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.7, "alg": "confidence",
         "remask": "wino", "remask_threshold": 0.9, "cache": "none"},
        "arXiv 2507.18578 (WINO)",
        "wide-in drafting at threshold 0.7, narrow-out: reopen drafts whose leave-one-out probability < 0.9 "
        "(shadow block), block 32"),
    "llada2-edit": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.7, "alg": "confidence",
         "remask": "edit", "edit_threshold": 0.9},
        "arXiv 2602.08676 (LLaDA2.1), SGLang JointThreshold",
        "mask→token at threshold 0.7, token→token edits of the current block above 0.9 (for models trained to edit)"),
    "mdlm": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "remdm", "remask": "none",
         "alg": "confidence", "temperature": 1.0},
        "arXiv 2406.07524 (MDLM), kuleshov-group/mdlm",
        "MDLM ancestral sampler: each mask decodes with probability (α_s − α_t)/(1 − α_t) on the log-linear "
        "schedule, tokens sampled (Gumbel fp64), decoded tokens final; whole sequence"),
    "remdm-cap": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "remdm", "remask": "remdm",
         "remdm_schedule": "cap", "eta": 0.008, "alg": "confidence", "temperature": 1.0},
        "arXiv 2503.00307 (ReMDM), kuleshov-group/remdm",
        "ReMDM-cap: decoded tokens reopen with σ_t = min(η, σ_max), η = 0.008 (script default); whole sequence"),
    "remdm-rescale": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "remdm", "remask": "remdm",
         "remdm_schedule": "rescale", "eta": 0.015, "alg": "confidence", "temperature": 1.0},
        "arXiv 2503.00307 (ReMDM), kuleshov-group/remdm",
        "ReMDM-rescale: σ_t = η·σ_max, η = 0.015 (script default); whole sequence"),
    "remdm-conf": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "remdm", "remask": "remdm",
         "remdm_schedule": "conf", "alg": "confidence", "temperature": 1.0},
        "arXiv 2503.00307 (ReMDM), kuleshov-group/remdm",
        "ReMDM-conf: σ_i = σ_max·softmax(−p_i) over decoded tokens (least likely reopen first); whole sequence"),
    "remdm-loop": Preset(
        {"gen_length": 128, "steps": 128, "schedule": "full", "commit": "remdm", "remask": "remdm",
         "remdm_schedule": "loop", "eta": 0.02, "t_on": 0.55, "t_off": 0.05, "alpha_on": 0.9, "alg": "confidence",
         "temperature": 1.0},
        "arXiv 2503.00307 (ReMDM), kuleshov-group/remdm",
        "ReMDM-loop: MDLM to α = 0.9 by t = 0.55, then remask σ = 0.02 at constant α until t = 0.05, then MDLM"),
    "klass": Preset(
        {"gen_length": 256, "steps": 256, "block_length": 64, "commit": "klass", "threshold": 0.6,
         "kl_threshold": 0.015, "kl_history": 2, "alg": "confidence", "confidence_fp64": True},
        "arXiv 2511.05664 (KLASS), scripts/llada_gsm8k.sh",
        "commit tokens with confidence > 0.6 whose last 2 step-to-step KLs are < 0.015; else LLaDA's quota"),
    "slowfast": Preset(
        {"gen_length": 256, "block_length": None, "commit": "slowfast", "threshold": 0.9, "alg": "confidence",
         "sf_explore_steps": 6, "sf_span_threshold": 0.3, "sf_stability_window": 2, "sf_stability_std": 1.0},
        "arXiv 2506.10848 (SlowFast Sampling), LiangrunFlora/Slow-Fast-Sampling generate_slow_fast_sampling",
        "sub-cycles: 6 slow steps estimate the confident span (conf ≥ 0.3, stable when 2 estimates' std < 1), "
        "then fast steps fill it (conf ≥ 0.9 if more than one, else top-1) on the input cut after the span"),
    "apd": Preset(
        {"gen_length": 256, "schedule": "full", "verify": "apd", "apd_mixture_weight": 0.7,
         "verify_lookahead": 100, "temperature": 0.2, "top_p": 0.95},
        "arXiv 2506.00413 (APD), danielmisrael/apd apd_sample",
        "adaptive parallel decoding: left to right, the dLLM's draft (M = 100 positions, fixed Gumbel noise) is "
        "accepted while it equals the sample of 0.7·logit_dLLM + 0.3·logit_AR under the same noise; T 0.2, top-p "
        "0.95 (the demo); needs a verifier model"),
    "apd-correct": Preset(
        {"gen_length": 256, "schedule": "full", "verify": "apd", "apd_mixture_weight": 0.7, "apd_correct": True,
         "verify_lookahead": 100, "temperature": 0.2, "top_p": 0.95},
        "arXiv 2506.00413 (APD) + speculative decoding's correction token",
        "`apd` whose first disagreement writes the mixture target's token (already computed: no extra forward) "
        "instead of ending the step, so the first token is never the dLLM's alone; needs a verifier model"),
    "specdiff": Preset(
        {"gen_length": 256, "schedule": "full", "verify": "specdiff", "verify_lookahead": 16, "temperature": 0.0},
        "arXiv 2408.05636 (SpecDiff, speculative diffusion decoding)",
        "the dLLM drafts γ = 16 tokens in one forward, the AR verifier accepts the matching prefix and writes its own "
        "token at the first mismatch (speculative sampling when temperature > 0); needs a verifier model"),
    "guided-diffusion": Preset(
        {"gen_length": 256, "block_length": 32, "verify": "guided", "temperature": 0.0, "cache": "prefix"},
        "arXiv 2505.21467 (FreeCache + guided diffusion), ZhanqiuHu/flash-dlm-experimental",
        "the dLLM's greedy draft of the block, verified left to right by the AR model (deterministic mode: longest "
        "prefix where AR argmax == draft, then the AR token); the clean prefix's K/V frozen (PrefixCache, refreshed "
        "at block starts); needs a verifier model"),
    "block-diffusion": Preset(
        {"gen_length": 48, "steps": 48, "block_length": 16, "commit": "linear", "alg": "confidence",
         "cache": "block-causal"},
        "arXiv 2503.09573 (BD3-LM)",
        "block-causal model (tiny-arith-bd): one token per step in its blocks of 16, exact block cache"),
    "sdar": Preset(
        {"gen_length": 256, "block_length": 4, "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "cache": "block-causal"},
        "SDAR (JetAstra/SDAR model cards), SGLang dLLM LowConfidence",
        "blocks of 4 (the model's), commit confidence ≥ 0.9 (at least one per step), exact block cache"),
    "fast-dllm-v2": Preset(
        {"gen_length": 256, "block_length": 8, "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "cache": "block-causal"},
        "arXiv 2509.26328 (Fast-dLLM v2), v2/generation_functions.py",
        "sub-blocks of 8 (small_block_size) decoded in order inside the model's 32-token blocks, threshold 0.9 "
        "(+ the best) per sub-block, each step computing the whole block on the exact block cache"),
    "llada2": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.95, "alg": "confidence",
         "cache": "block-causal"},
        "LLaDA2.0 model card, SGLang dLLM LowConfidence (threshold 0.95)",
        "blocks of 32 (the model's), commit confidence ≥ 0.95 (at least one per step), exact block cache"),
    "dinfer-credit": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "threshold", "threshold": 0.9, "alg": "confidence",
         "logits_fusion": "credit", "credit_alpha": 0.7, "credit_gamma": 0.2, "credit_beta": 0.8},
        "arXiv 2510.08666 (dInfer), CreditThresholdParallelDecoder",
        "threshold 0.9 on logits fused with a decaying credit for tokens that stay on top, block 32"),
    "learn2pd": Preset(
        {"gen_length": 256, "block_length": 32, "commit": "learned", "filter_threshold": None, "eotp": True,
         "eotp_threshold": 0.9, "alg": "confidence"},
        "arXiv 2509.25188 (Learn2PD; no public code, designed from the paper)",
        "a learned filter commits the positions whose argmax it calls final (≥ 1 per step) + End-of-Text "
        "Prediction fills the EOS tail; needs the model's learn2pd_filter.safetensors (unmask train-filter)"),
}
