"""DiffusionGemma's config.json (`DiffusionGemmaForBlockDiffusion`: a `text_config` plus canvas_length) read
into our own sizes, every value checked, and the tensor-name map of the layout transformers saves.

The text path only: a vision tower in the checkpoint is skipped (its tensors are not loaded) and noted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unmask.models.gemma_blocks import ACTIVATIONS
from unmask.models.hf_config import MAX_CONTEXT, bool_key, float_key, int_key, token_ids_key
from unmask.models.spec import DiffusionSpec

ARCHITECTURES = ("DiffusionGemmaForBlockDiffusion",)
MODEL_TYPES = ("diffusion_gemma",)
LAYER_TYPES = ("sliding_attention", "full_attention")
IGNORED_PREFIXES = ("model.encoder.vision_tower.", "model.encoder.embed_vision.")  # the vision path
GLOBAL_HEAD_DIM = 512  # transformers' default head_dim of full-attention layers when per_layer_config is absent


@dataclass(frozen=True)
class LayerShape:
    kind: str           # "sliding_attention" | "full_attention"
    head_dim: int
    n_kv_heads: int
    rope_theta: float
    rotary_fraction: float
    rope_factor: float
    proportional: bool

    @property
    def sliding(self) -> bool:
        return self.kind == "sliding_attention"


@dataclass(frozen=True)
class GemmaConfig:
    vocab_size: int
    d_model: int
    n_heads: int
    ffn_hidden: int
    moe_hidden: int
    n_experts: int
    top_k: int
    norm_eps: float
    sliding_window: int
    softcap: float
    activation: str
    canvas_length: int
    max_positions: int
    layers: tuple[LayerShape, ...]
    tie_embeddings: bool = True

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def head_dim(self) -> int:   # the widest head: sizes the memory estimate and the loader's rotary check
        return max(s.head_dim for s in self.layers)

    @property
    def n_kv_heads(self) -> int:
        return max(s.n_kv_heads for s in self.layers)

    def check(self) -> None:
        for s in self.layers:
            if self.n_heads % s.n_kv_heads:
                raise ValueError(f"num_attention_heads {self.n_heads} is not divisible by a layer's "
                                 f"{s.n_kv_heads} key/value heads")
            if s.head_dim % 2:
                raise ValueError(f"head_dim {s.head_dim} must be even for rotary embeddings")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k_experts {self.top_k} exceeds num_experts {self.n_experts}")


def _rope(text: dict[str, Any], kind: str) -> tuple[float, float, float, bool]:
    params = text.get("rope_parameters") or {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0}}
    if not isinstance(params, dict) or not isinstance(params.get(kind), dict):
        raise ValueError(f"text_config.rope_parameters must map each layer type to its RoPE settings; {kind!r} missing")
    rope = params[kind]
    rope_type = rope.get("rope_type", "default")
    if rope_type not in ("default", "proportional"):
        raise ValueError(f"rope_type {rope_type!r} for {kind} is not supported (default | proportional)")
    fraction = float_key(rope, "partial_rotary_factor", 1.0)
    if rope_type == "default" and fraction != 1.0:
        raise ValueError(f"partial_rotary_factor {fraction} needs rope_type 'proportional'")
    return float_key(rope, "rope_theta"), fraction, float_key(rope, "factor", 1.0), rope_type == "proportional"


def _layer_overrides(text: dict[str, Any], kinds: list[str]) -> dict[int, dict[str, int]]:
    """Per-layer head_dim / num_key_value_heads, as transformers resolves `per_layer_config`."""
    raw = text.get("per_layer_config")
    if raw is None:   # transformers' own defaults, applied to every full-attention layer
        override = {"head_dim": int_key(text, "global_head_dim", GLOBAL_HEAD_DIM)}
        if text.get("num_global_key_value_heads") is not None:
            override["num_key_value_heads"] = int_key(text, "num_global_key_value_heads")
        return {i: override for i, k in enumerate(kinds) if k == "full_attention"}
    if not isinstance(raw, dict):
        raise ValueError(f"text_config.per_layer_config must be an object, got {type(raw).__name__}")
    out = {}
    for key, values in raw.items():
        if not str(key).isdigit() or not 0 <= int(key) < len(kinds) or not isinstance(values, dict):
            raise ValueError(f"text_config.per_layer_config entry {key!r} must be a layer index below {len(kinds)} "
                             f"mapping to an object")
        unknown = set(values) - {"head_dim", "num_key_value_heads"}
        if unknown:
            raise ValueError(f"text_config.per_layer_config[{key}] sets {sorted(unknown)}; unmask supports head_dim "
                             f"and num_key_value_heads")
        out[int(key)] = {k: int_key(values, k) for k in values}
    return out


def from_config(cfg: dict[str, Any]) -> tuple[GemmaConfig, DiffusionSpec]:
    """Read a DiffusionGemma config.json into our config and diffusion spec (ValueError/KeyError on bad keys)."""
    text = cfg["text_config"]
    if not isinstance(text, dict):
        raise ValueError(f"text_config must be an object, got {type(text).__name__}")
    if text.get("use_bidirectional_attention") == "all":
        raise ValueError("use_bidirectional_attention='all' (a bidirectional encoder) is not supported; unmask runs "
                         "the text encoder causally, as checkpoints with null or 'vision' do")
    if not bool_key(cfg, "tie_word_embeddings", True) or not bool_key(text, "tie_word_embeddings", True):
        raise ValueError("tie_word_embeddings=false (separate encoder, decoder and head weights) is not supported")
    if text.get("attention_bias"):
        raise ValueError("attention_bias=true is not supported by DiffusionGemma")
    activation = text.get("hidden_activation", "gelu_pytorch_tanh")
    if activation not in ACTIVATIONS:
        raise ValueError(f"hidden_activation {activation!r} is not supported ({' | '.join(ACTIVATIONS)})")
    n_layers = int_key(text, "num_hidden_layers")
    kinds = text.get("layer_types") or ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n_layers)]
    if not isinstance(kinds, list) or len(kinds) != n_layers or any(k not in LAYER_TYPES for k in kinds):
        raise ValueError(f"text_config.layer_types must list {n_layers} entries of {' | '.join(LAYER_TYPES)}")
    kinds = kinds[:-1] + ["full_attention"]   # transformers forces the last layer to full attention
    overrides = _layer_overrides(text, kinds)
    head_dim, n_kv = int_key(text, "head_dim", 256), int_key(text, "num_key_value_heads", 4)
    shapes = []
    for i, kind in enumerate(kinds):
        theta, fraction, factor, proportional = _rope(text, kind)
        o = overrides.get(i, {})
        shapes.append(LayerShape(kind, o.get("head_dim", head_dim), o.get("num_key_value_heads", n_kv),
                                 theta, fraction, factor, proportional))
    gemma = GemmaConfig(
        vocab_size=int_key(text, "vocab_size"), d_model=int_key(text, "hidden_size"),
        n_heads=int_key(text, "num_attention_heads"), ffn_hidden=int_key(text, "intermediate_size"),
        moe_hidden=int_key(text, "moe_intermediate_size"), n_experts=int_key(text, "num_experts"),
        top_k=int_key(text, "top_k_experts"), norm_eps=float_key(text, "rms_norm_eps", 1e-6),
        sliding_window=int_key(text, "sliding_window", 512, minimum=2),
        softcap=float_key(text, "final_logit_softcapping", 30.0), activation=activation,
        canvas_length=int_key(cfg, "canvas_length", 256),
        max_positions=int_key(text, "max_position_embeddings", 131_072, maximum=MAX_CONTEXT), layers=tuple(shapes))
    eos = token_ids_key(text, "eos_token_id", 1)
    pad = text.get("pad_token_id")
    spec = DiffusionSpec(mask_id=-1, eos_ids=eos, attention="encoder_canvas", corruption="uniform",
                         context_len=gemma.max_positions, default_preset="diffusion-gemma",
                         pad_id=pad if isinstance(pad, int) and not isinstance(pad, bool) else None,
                         canvas_length=gemma.canvas_length)
    return gemma, spec


GENERATION_KEYS = {"max_new_tokens": "gen_length", "max_denoising_steps": "canvas_steps", "t_min": "t_min",
                   "t_max": "t_max", "stability_threshold": "stability_threshold",
                   "confidence_threshold": "confidence_threshold"}


def generation_defaults(gen: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
    """A checkpoint's generation_config.json → (DecodeConfig values, extra EOS ids): its set values only."""
    values = {ours: gen[theirs] for theirs, ours in GENERATION_KEYS.items() if gen.get(theirs) is not None}
    sampler = gen.get("sampler_config")
    if isinstance(sampler, dict) and sampler.get("entropy_bound") is not None:
        values["eb_gamma"] = sampler["entropy_bound"]
    eos = token_ids_key(gen, "eos_token_id", []) if gen.get("eos_token_id") is not None else ()
    return values, eos


LAYER_PARAMS = ("input_layernorm.weight", "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
                "post_feedforward_layernorm.weight", "post_feedforward_layernorm_1.weight",
                "post_feedforward_layernorm_2.weight", "pre_feedforward_layernorm_2.weight",
                "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.o_proj.weight",
                "self_attn.q_norm.weight", "self_attn.k_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                "mlp.down_proj.weight", "router.proj.weight", "router.scale", "router.per_expert_scale",
                "experts.gate_up_proj", "experts.down_proj")


def name_map(arch: GemmaConfig) -> dict[str, str]:
    """Checkpoint name → our parameter. transformers ties the encoder's text weights, the embedding and the LM
    head to the decoder's and saves them once, under the decoder's names; only the per-layer scalars (buffers,
    never tied) exist twice."""
    dec = "model.decoder."
    names = {dec + "embed_tokens.weight": "embed.weight", dec + "norm.weight": "norm.weight"}
    for part in ("pre_norm.weight", "gate_proj.weight", "up_proj.weight", "down_proj.weight"):
        names[dec + "self_conditioning." + part] = "self_conditioning." + part
    for i, shape in enumerate(arch.layers):
        params = LAYER_PARAMS + (("self_attn.v_proj.weight",) if shape.sliding else ())
        names.update({f"{dec}layers.{i}.{p}": f"layers.{i}.{p}" for p in params})
        names[f"{dec}layers.{i}.layer_scalar"] = f"layers.{i}.decoder_scalar"
        names[f"model.encoder.language_model.layers.{i}.layer_scalar"] = f"layers.{i}.encoder_scalar"
    return names
