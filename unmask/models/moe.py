"""Mixture-of-experts FFN (LLaDA-MoE, LLaDA2.0/2.1): a router picks top-k experts per token; only those run.

Routing (per token, in float32): logits = W_gate · x; scores = softmax(logits) or sigmoid(logits). The experts
are chosen on scores + expert_bias (LLaDA2's load-balancing bias, 0 elsewhere), optionally group-limited: the
experts form `n_group` groups, a group scores the sum of its two best experts, and only the `topk_group` best
groups may be chosen (LLaDA2 / DeepSeek-V3). A chosen expert's weight is its score (without the bias),
renormalised over the k chosen when `norm_topk` (and k > 1), times `routed_scale`; LLaDA-MoE instead weighs
by the biased score (`bias_in_weights`). Shared experts (LLaDA2, LLaDA-MoE) run on every token and are added.

Dispatch is batched by expert: the (token, expert) pairs are sorted by expert and each expert runs once on all
of its tokens; a token's output never depends on the other tokens. Sizing each expert's batch reads the
per-expert counts on the host: one sync per MoE layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unmask.models.layers import SwiGLU


@dataclass(frozen=True)
class MoEConfig:
    n_experts: int
    top_k: int
    expert_hidden: int
    shared_hidden: int = 0     # width of the shared experts (fused into one SwiGLU); 0 = none
    scoring: str = "softmax"   # softmax | sigmoid
    norm_topk: bool = True
    n_group: int = 1
    topk_group: int = 1
    routed_scale: float = 1.0
    expert_bias: bool = False
    bias_in_weights: bool = False   # LLaDA-MoE: the expert bias is part of the routing weight too

    def check(self) -> None:
        if self.scoring not in ("softmax", "sigmoid"):
            raise ValueError(f"MoE scoring must be softmax or sigmoid, got {self.scoring!r}")
        if not 0 < self.top_k <= self.n_experts:
            raise ValueError(f"num_experts_per_tok {self.top_k} must be in [1, num_experts {self.n_experts}]")
        if self.n_experts % self.n_group or not 0 < self.topk_group <= self.n_group:
            raise ValueError(f"n_group {self.n_group} must divide num_experts {self.n_experts} and topk_group "
                             f"{self.topk_group} must be in [1, n_group]")
        if self.n_group > 1 and self.n_experts // self.n_group < 2:
            raise ValueError("group-limited routing scores a group by its two best experts: need ≥ 2 per group")
        if self.topk_group * (self.n_experts // self.n_group) < self.top_k:
            raise ValueError(f"topk_group {self.topk_group} groups hold fewer than num_experts_per_tok "
                             f"{self.top_k} experts")


class Router(nn.Module):
    """W_gate (E, d) and, for LLaDA2, `expert_bias` (E,) (a checkpoint tensor, never trained here)."""

    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.n_experts, d_model))
        if cfg.expert_bias:
            self.expert_bias = nn.Parameter(torch.zeros(cfg.n_experts), requires_grad=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (T, d). Returns (experts (T, k) long, weights (T, k) float32)."""
        cfg = self.cfg
        logits = x.float() @ self.weight.float().t()                                 # (T, E)
        scores = logits.softmax(-1) if cfg.scoring == "softmax" else logits.sigmoid()
        choose = scores + self.expert_bias.float() if cfg.expert_bias else scores
        if cfg.n_group > 1:
            choose = self.limit_groups(choose)
        experts = choose.topk(cfg.top_k, dim=-1).indices                             # (T, k)
        weights = (choose if cfg.bias_in_weights else scores).gather(1, experts)     # (T, k)
        if cfg.norm_topk and cfg.top_k > 1:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return experts, weights * cfg.routed_scale

    def limit_groups(self, choose: Tensor) -> Tensor:
        """-inf outside the topk_group groups whose two best experts score highest. choose: (T, E)."""
        T, E, G = choose.shape[0], choose.shape[1], self.cfg.n_group
        grouped = choose.view(T, G, E // G)                                          # (T, G, E/G)
        group_score = grouped.topk(2, dim=-1).values.sum(-1)                         # (T, G)
        keep = torch.zeros_like(group_score, dtype=torch.bool)
        keep.scatter_(1, group_score.topk(self.cfg.topk_group, dim=-1).indices, True)
        return grouped.masked_fill(~keep[..., None], float("-inf")).view(T, E)


class MoE(nn.Module):
    """Router + `experts` (SwiGLU each) + optional `shared_experts`; checkpoint-named submodules."""

    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        cfg.check()
        self.gate = Router(d_model, cfg)
        self.experts = nn.ModuleList(SwiGLU(d_model, cfg.expert_hidden) for _ in range(cfg.n_experts))
        if cfg.shared_hidden:
            self.shared_experts = SwiGLU(d_model, cfg.shared_hidden)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, S, d) → (B, S, d)."""
        flat = x.reshape(-1, x.shape[-1])                                            # (T, d)
        experts, weights = self.gate(flat)                                           # (T, k)
        k = experts.shape[1]
        order = experts.flatten().argsort(stable=True)                               # pairs sorted by expert
        tokens = order // k                                                          # (T·k,) token of each pair
        pair_weight = weights.flatten()[order]                                       # (T·k,)
        counts = torch.bincount(experts.flatten(), minlength=len(self.experts)).tolist()   # host sync
        out = torch.zeros_like(flat)
        start = 0
        for expert, n in zip(self.experts, counts):
            if n:
                rows = tokens[start:start + n]
                y = expert(flat[rows]) * pair_weight[start:start + n, None].to(flat.dtype)
                out.index_add_(0, rows, y)
                start += n
        if hasattr(self, "shared_experts"):
            out = out + self.shared_experts(flat)
        return out.view_as(x)
