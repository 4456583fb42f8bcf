"""Tiny random LLaDA / Dream models driven through the Engine, for the cache tests."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from unmask.config import DecodeConfig
from unmask.engine.engine import Engine
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


@dataclass
class Costs:
    """What the cache tests read: positions x layers per forward (host ints) and per row, and cache bytes."""

    step_costs: list[int] = field(default_factory=list)
    positions_x_layers: torch.Tensor | None = None
    peak_bytes: int = 0
    cache: object = None

    def nbytes(self) -> int:
        """The cache's largest size while rows ran (the engine frees it when the last row leaves)."""
        return self.peak_bytes

    def __getattr__(self, name: str):
        return getattr(self.__dict__["cache"], name)


def run(model, spec, cfg: DecodeConfig, prompts: list[list[int]] = PROMPTS, on_step=None):
    """Decode `prompts` together (one group); returns (tokens (B, G) with masks where unfinished, Costs)."""
    engine = Engine(model, spec, "cpu", max_running=len(prompts))
    ids = [engine.add_request(p, cfg, stream_canvas=True) for p in prompts]
    costs, canvases, done = Costs(), {}, {}
    with torch.inference_mode():
        while engine.has_unfinished():
            group = engine.groups[0] if engine.groups else None
            outputs = engine.step()
            if group is None:
                group = engine.groups[0] if engine.groups else None
            if group is not None:
                costs.cache = group.parts.cache
                costs.peak_bytes = max(costs.peak_bytes, group.parts.cache.nbytes())
                costs.step_costs.append(group.last_step_cost)
            for o in outputs:
                canvases[o.request_id] = o.canvas
                if o.finished:
                    done[o.request_id] = o.completion
            if on_step is not None:
                on_step([canvases[i] for i in ids if i in canvases])
    costs.positions_x_layers = torch.tensor([done[i].computed for i in ids])
    return torch.tensor([canvases[i] for i in ids]), costs


def completions(model, prompts: list[list[int]], cfg: DecodeConfig) -> list:
    """Decode `prompts` together through an Engine on (model, spec); their Completions in order (none failed)."""
    net, spec = model
    engine = Engine(net, spec)
    ids = [engine.add_request(p, cfg) for p in prompts]
    done = {}
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                if out.finished:
                    assert out.error is None, out.error
                    done[out.request_id] = out.completion
    return [done[i] for i in ids]
