"""Tiny random DiffusionGemma checkpoints written with transformers' own classes (a test-only dependency), with
the character tokenizer's 84-token vocabulary (pad 0, EOS 1) so that text prompts work too."""
from __future__ import annotations

from pathlib import Path

import pytest

TEXT = dict(vocab_size=84, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            intermediate_size=48, moe_intermediate_size=16, num_experts=4, top_k_experts=2, num_hidden_layers=3,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"], sliding_window=6,
            max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=1,
            global_head_dim=16, num_global_key_value_heads=1, use_bidirectional_attention="vision")
VISION = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
              intermediate_size=16, patch_size=2, position_embedding_size=8)


@pytest.fixture(scope="module", autouse=False)
def one_thread():
    """Tiny models run ~25× slower on two threads on a shared two-core machine (thread contention): one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_model(canvas_length: int = 8, seed: int = 0, **text_overrides):
    """transformers' DiffusionGemmaForBlockDiffusion with random weights (norms and scalars randomised too, so
    a parity test cannot pass with a weight that is read wrongly but happens to be 1)."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "DiffusionGemmaForBlockDiffusion"):
        pytest.skip("transformers has no DiffusionGemma (needs ≥ 5.13)")
    import torch

    config = transformers.DiffusionGemmaConfig(text_config={**TEXT, **text_overrides}, vision_config=VISION,
                                               canvas_length=canvas_length)
    torch.manual_seed(seed)
    model = transformers.DiffusionGemmaForBlockDiffusion(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "router.scale", "per_expert_scale", "layernorm.weight")) or \
                    "layernorm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.copy_(0.5 + torch.rand_like(b))
    return model


def write_reference(path: Path, canvas_length: int = 8, seed: int = 0, **text_overrides):
    from unmask.train.char_tokenizer import save_char_tokenizer

    model = reference_model(canvas_length, seed, **text_overrides)
    model.save_pretrained(str(path))
    save_char_tokenizer(path)
    return model
