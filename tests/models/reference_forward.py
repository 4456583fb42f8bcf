"""Independent re-implementations of the published forwards (Qwen2 / Qwen3 / BailingMoeV2-style), written from
the reference modeling code's description, reading raw tensors by their checkpoint names. Deliberately plain:
eager attention with an additive mask, rotate-half RoPE from inv_freq, and a per-token loop for MoE routing."""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def rms(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rope(x, pos, dim, theta):
    """Rotate the first `dim` features of x (B, H, L, D) at positions pos (B, L)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    ang = pos[:, None, :, None].float() * inv                  # (B, 1, L, dim/2)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    rot, rest = x[..., :dim], x[..., dim:]
    half = dim // 2
    rotated = torch.cat([-rot[..., half:], rot[..., :half]], -1)
    return torch.cat([rot * cos + rotated * sin, rest], -1)


def block_mask(pos, block):
    """(B, 1, L, L) additive: 0 where key block ≤ query block, -inf elsewhere."""
    allowed = (pos[:, None, :] // block) <= (pos[:, :, None] // block)
    return torch.where(allowed, 0.0, float("-inf"))[:, None]


def attention(q, k, v, mask):
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    w = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
    return w.softmax(-1) @ v


def swiglu(x, t, prefix):
    return F.linear(F.silu(F.linear(x, t[prefix + "gate_proj.weight"])) * F.linear(x, t[prefix + "up_proj.weight"]),
                    t[prefix + "down_proj.weight"])


def moe_token(x, t, prefix, c):
    """One token (d,) through a BailingMoeV2-style sparse block, expert by expert as the reference describes."""
    logits = t[prefix + "gate.weight"].float() @ x.float()
    scores = logits.sigmoid() if c["scoring"] == "sigmoid" else logits.softmax(-1)
    choose = scores + t.get(prefix + "gate.expert_bias", torch.zeros_like(scores))
    E, G = choose.shape[0], c.get("n_group", 1)
    if G > 1:
        groups = choose.view(G, E // G)
        best = groups.topk(2, -1).values.sum(-1).topk(c["topk_group"]).indices
        allowed = torch.zeros(G, dtype=torch.bool)
        allowed[best] = True
        choose = torch.where(allowed[:, None], groups, float("-inf")).view(E)
    idx = choose.topk(c["top_k"]).indices
    w = scores[idx]
    if c["norm_topk"] and c["top_k"] > 1:
        w = w / (w.sum() + 1e-20)
    w = w * c.get("routed_scale", 1.0)
    out = sum(w[j] * swiglu(x, t, f"{prefix}experts.{int(e)}.") for j, e in enumerate(idx))
    if prefix + "shared_experts.gate_proj.weight" in t:
        out = out + swiglu(x, t, prefix + "shared_experts.")
    return out


def qwen_forward(t, c, ids, pos):
    """Qwen2 (Fast-dLLM v2) / Qwen3 (SDAR) decoder under a block-causal mask; c: the config dict."""
    H, Hkv, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    D = c.get("head_dim") or c["hidden_size"] // H
    h = t["model.embed_tokens.weight"][ids]
    B, L, _ = h.shape
    mask = block_mask(pos, c.get("bd_size") or c.get("block_size"))
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, t[p + "input_layernorm.weight"], eps)
        proj = {n: F.linear(x, t[f"{p}self_attn.{n}_proj.weight"], t.get(f"{p}self_attn.{n}_proj.bias")) for n in "qkv"}
        q = proj["q"].view(B, L, H, D).transpose(1, 2)
        k = proj["k"].view(B, L, Hkv, D).transpose(1, 2)
        v = proj["v"].view(B, L, Hkv, D).transpose(1, 2)
        if p + "self_attn.q_norm.weight" in t:
            q, k = rms(q, t[p + "self_attn.q_norm.weight"], eps), rms(k, t[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, D, c["rope_theta"]), rope(k, pos, D, c["rope_theta"])
        o = attention(q, k, v, mask).transpose(1, 2).reshape(B, L, H * D)
        h = h + F.linear(o, t[p + "self_attn.o_proj.weight"])
        h = h + swiglu(rms(h, t[p + "post_attention_layernorm.weight"], eps), t, p + "mlp.")
    return F.linear(rms(h, t["model.norm.weight"], eps), t["lm_head.weight"])


def llada2_forward(t, c, ids, pos):
    """LLaDA2 (BailingMoeV2 layout) under its block-causal mask."""
    H, Hkv, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    D = c.get("head_dim") or c["hidden_size"] // H
    rot = int(D * c.get("partial_rotary_factor", 1.0))
    moe = {"scoring": "sigmoid", "top_k": c["num_experts_per_tok"], "norm_topk": True, "n_group": c["n_group"],
           "topk_group": c["topk_group"], "routed_scale": c["routed_scaling_factor"]}
    h = t["model.word_embeddings.weight"][ids]
    B, L, _ = h.shape
    mask = block_mask(pos, c.get("block_size", 32))
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, t[p + "input_layernorm.weight"], eps)
        qkv = F.linear(x, t[p + "attention.query_key_value.weight"]).view(B, L, H + 2 * Hkv, D)
        q, k, v = (s.transpose(1, 2) for s in qkv.split([H, Hkv, Hkv], dim=2))
        q, k = rms(q, t[p + "attention.query_layernorm.weight"], eps), rms(k, t[p + "attention.key_layernorm.weight"], eps)
        q, k = rope(q, pos, rot, c["rope_theta"]), rope(k, pos, rot, c["rope_theta"])
        o = attention(q, k, v, mask).transpose(1, 2).reshape(B, L, H * D)
        h = h + F.linear(o, t[p + "attention.dense.weight"])
        x = rms(h, t[p + "post_attention_layernorm.weight"], eps)
        if i < c["first_k_dense_replace"]:
            h = h + swiglu(x, t, p + "mlp.")
        else:
            h = h + torch.stack([torch.stack([moe_token(x[b, j], t, p + "mlp.", moe) for j in range(L)])
                                 for b in range(B)])
    return F.linear(rms(h, t["model.norm.weight"], eps), t["lm_head.weight"])


def olmoe_moe_token(x, t, p):
    """LLaDA-MoE's sparse block for one token: softmax scores (+ expert_bias), top-k kept as they are."""
    w = (t[p + "mlp.gate.weight"] @ x).float().softmax(-1)
    if p + "mlp.expert_bias" in t:
        w = w + t[p + "mlp.expert_bias"]
    k = t["__top_k__"]
    top, idx = w.topk(k)
    out = torch.zeros_like(x)
    for weight, e in zip(top, idx):
        out = out + weight * swiglu(x, t, f"{p}mlp.experts.{int(e)}.")
    return out


def llada_moe_forward(t, c, ids, pos):
    """LLaDA-MoE (OLMoE-derived), full attention; dense layers where moe_layer_freq is 0."""
    H, Hkv, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    D = c["hidden_size"] // H
    t = {**t, "__top_k__": c["num_experts_per_tok"]}
    h = t["model.embed_tokens.weight"][ids]
    B, L, _ = h.shape
    mask = torch.zeros(B, 1, L, L)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, t[p + "input_layernorm.weight"], eps)
        proj = {n: F.linear(x, t[f"{p}self_attn.{n}_proj.weight"], t.get(f"{p}self_attn.{n}_proj.bias")) for n in "qkv"}
        q, k, v = (proj[n].view(B, L, -1, D).transpose(1, 2) for n in "qkv")
        if p + "self_attn.q_norm.weight" in t:
            q, k = rms(q, t[p + "self_attn.q_norm.weight"], eps), rms(k, t[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, D, c["rope_theta"]), rope(k, pos, D, c["rope_theta"])
        o = attention(q, k, v, mask).transpose(1, 2).reshape(B, L, H * D)
        h = h + F.linear(o, t[p + "self_attn.o_proj.weight"], t.get(p + "self_attn.o_proj.bias"))
        x = rms(h, t[p + "post_attention_layernorm.weight"], eps)
        if c["moe_layer_freq"][i] == 0:
            h = h + swiglu(x, t, p + "mlp.")
            continue
        routed = torch.stack([torch.stack([olmoe_moe_token(x[b, j], t, p) for j in range(L)]) for b in range(B)])
        shared = swiglu(x, t, p + "shared_expert.") if p + "shared_expert.gate_proj.weight" in t else 0
        h = h + routed + shared
    return F.linear(rms(h, t["model.norm.weight"], eps), t["lm_head.weight"])
