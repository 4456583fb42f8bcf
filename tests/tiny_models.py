"""Tiny random LLaDA / Dream models in the published layouts, with the character tokenizer."""
from __future__ import annotations

from pathlib import Path

import torch

from unmask.models.loader import parse_config, save_model
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import EOS_ID, MASK_ID, PAD_ID, save_char_tokenizer

VOCAB = 84  # the character tokenizer's size, so text prompts work


def tiny_config(arch: str, **over) -> dict:
    if arch == "llada":
        cfg = {"architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": 64, "n_heads": 4,
               "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 128, "vocab_size": VOCAB, "embedding_size": VOCAB,
               "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": False, "mask_token_id": MASK_ID,
               "eos_token_id": EOS_ID, "pad_token_id": PAD_ID, "max_sequence_length": 256}
    else:
        cfg = {"architectures": ["DreamModel"], "model_type": "Dream", "hidden_size": 64, "num_attention_heads": 4,
               "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": VOCAB,
               "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
               "mask_token_id": MASK_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
               "max_position_embeddings": 256}
    return {**cfg, **over}


def write_tiny_model(path: Path, arch: str = "llada", seed: int = 0, **over) -> Path:
    """A random model with well-separated logits; the mask id has logit 0, so it is almost never the argmax."""
    cfg = tiny_config(arch, **over)
    model_cfg, _, names = parse_config(cfg)
    torch.manual_seed(seed)
    model = DecoderLM(model_cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else 0.5 * torch.randn_like(p) / p.shape[-1] ** 0.25)
        model.lm_head.weight[MASK_ID] = 0.0  # logit 0: far below the top logit of a random row, rarely chosen
    save_model(model, names, path, cfg)
    save_char_tokenizer(path)
    return path
