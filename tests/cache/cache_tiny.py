"""Tiny random LLaDA / Dream models driven through build_parts + denoise, for the cache tests."""
from __future__ import annotations

from dataclasses import replace

import torch

from unmask.cache import Canvas
from unmask.config import DecodeConfig
from unmask.decoding import DecodeState
from unmask.engine.build import build_parts
from unmask.engine.generate import denoise
from unmask.models.cache_view import positions_from_mask
from unmask.models.loader import parse_config
from unmask.models.transformer import DecoderLM

VOCAB, MASK, EOS, PAD = 64, 63, 1, 0
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24]]  # different lengths: left padding


def config(arch: str) -> dict:
    if arch == "llada":
        return {"architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": 32, "n_heads": 4,
                "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 64, "vocab_size": VOCAB, "embedding_size": VOCAB,
                "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": False, "mask_token_id": MASK,
                "eos_token_id": EOS, "pad_token_id": PAD, "max_sequence_length": 128}
    return {"architectures": ["DreamModel"], "model_type": "Dream", "hidden_size": 32, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 64, "vocab_size": VOCAB,
            "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "mask_token_id": MASK,
            "eos_token_id": EOS, "pad_token_id": PAD, "max_position_embeddings": 128}


def tiny(arch: str = "llada", attention: str = "full", seed: int = 0):
    """(model, spec) with random weights whose logits are well separated; [MASK] is never predicted."""
    arch_cfg, spec, _ = parse_config(config(arch))
    torch.manual_seed(seed)
    model = DecoderLM(arch_cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.5)
        model.lm_head.weight[MASK] = 0.0   # logit 0 while others are far apart: [MASK] is never the argmax
    return model, replace(spec, attention=attention)


def canvas(prompts: list[list[int]], gen_length: int, shift: int) -> Canvas:
    longest = max(len(r) for r in prompts)
    prompt = torch.tensor([[PAD] * (longest - len(r)) + r for r in prompts])
    real = torch.tensor([[False] * (longest - len(r)) + [True] * len(r) for r in prompts])
    key_mask = torch.cat([real, torch.ones(len(prompts), gen_length, dtype=torch.bool)], 1)
    return Canvas(prompt, key_mask, positions_from_mask(key_mask), shift)


def run(model, spec, cfg: DecodeConfig, prompts: list[list[int]] = PROMPTS, on_step=None):
    """Decode `prompts` as one batch; returns (tokens (B, G), the cache after the last step)."""
    state = DecodeState.start(len(prompts), cfg.gen_length, spec.mask_id, spec.eos_ids, "cpu")
    parts = build_parts(cfg, spec, len(prompts), torch.device("cpu"))
    state = denoise(model, canvas(prompts, cfg.gen_length, spec.logit_shift), state, parts, on_step)
    return state.tokens, parts.cache
