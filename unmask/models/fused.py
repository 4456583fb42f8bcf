"""Fused projections, made at load: q|k|v into one matmul per attention layer and gate|up into one per SwiGLU.

One (d → q+k+v) matmul instead of three and one (d → 2·hidden) instead of two: fewer, larger kernels, which is
what a small-batch step on CPU (and a graph on GPU) pays for. Only the module layout changes: `state_dict()`
still yields the unfused names (`q_proj.weight`, `gate_proj.weight`, …) and `load_state_dict` accepts them, so
checkpoints read and written around a fused model keep their tensor names.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from unmask.models.layers import SwiGLU
from unmask.models.transformer import Attention, DecoderLM

QKV = ("q_proj", "k_proj", "v_proj")
GATE_UP = ("gate_proj", "up_proj")


def fuse_projections(model: nn.Module) -> nn.Module:
    """Fuse every separate q/k/v and gate/up projection of a DecoderLM in place; returns the model. Layers already
    fused (LLaDA2's query_key_value) and models of other classes are left as they are."""
    if not isinstance(model, DecoderLM):
        return model
    for module in list(model.modules()):
        if isinstance(module, Attention) and hasattr(module, "q_proj"):
            fuse(module, QKV, "qkv_proj")
        elif isinstance(module, SwiGLU) and hasattr(module, "gate_proj"):
            fuse(module, GATE_UP, "gate_up_proj")
    return model


def is_fused(model: nn.Module) -> bool:
    return any(getattr(m, "fused_parts", None) for m in model.modules())


def fuse(module: nn.Module, parts: tuple[str, ...], fused_name: str) -> None:
    """Replace the Linear layers `parts` of `module` by one Linear `fused_name` whose output rows are theirs
    stacked in order, and keep the unfused names in the module's state dict."""
    linears = [getattr(module, p) for p in parts]
    weight = torch.cat([lin.weight.detach() for lin in linears])
    bias = torch.cat([lin.bias.detach() for lin in linears]) if linears[0].bias is not None else None
    fused = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    fused.weight = nn.Parameter(weight, requires_grad=linears[0].weight.requires_grad)
    if bias is not None:
        fused.bias = nn.Parameter(bias, requires_grad=linears[0].bias.requires_grad)
    for p in parts:
        delattr(module, p)
    setattr(module, fused_name, fused)
    module.fused_parts = (fused_name, parts, [lin.weight.shape[0] for lin in linears])
    module.register_state_dict_post_hook(split_state)
    module.register_load_state_dict_pre_hook(join_state)


def split_state(module: nn.Module, state: dict[str, Tensor], prefix: str, local_metadata) -> None:
    """state_dict hook: the fused tensors leave under the unfused names."""
    fused_name, parts, widths = module.fused_parts
    for kind in ("weight", "bias"):
        key = f"{prefix}{fused_name}.{kind}"
        if key in state:
            for part, value in zip(parts, state.pop(key).split(widths)):
                state[f"{prefix}{part}.{kind}"] = value


def join_state(module: nn.Module, state: dict[str, Tensor], prefix: str, *args) -> None:
    """load_state_dict pre-hook: unfused tensors arriving under their own names are stacked into the fused one."""
    fused_name, parts, _ = module.fused_parts
    for kind in ("weight", "bias"):
        keys = [f"{prefix}{part}.{kind}" for part in parts]
        if all(k in state for k in keys):
            state[f"{prefix}{fused_name}.{kind}"] = torch.cat([state.pop(k) for k in keys])
