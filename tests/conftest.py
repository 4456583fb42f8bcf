"""Shared fixtures: tiny random checkpoints in the published LLaDA / Dream layouts, markers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from unmask.models.loader import parse_config, save_model
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import EOS_ID, MASK_ID, PAD_ID, save_char_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/checkpoints.py, tests/reference

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


@pytest.fixture(scope="session")
def llada_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("llada"), "llada")


@pytest.fixture(scope="session")
def dream_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("dream"), "dream")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow (or set UNMASK_RUN_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or os.environ.get("UNMASK_RUN_SLOW") == "1"
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow"))
