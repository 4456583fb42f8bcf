"""Tiny random checkpoints in the published LLaDA / Dream layouts, and independent reference forward passes.

Layouts mirror the official Hugging Face repos ``GSAI-ML/LLaDA-8B-Instruct`` and ``Dream-org/Dream-v0-Instruct-7B``
(``config.json`` keys and values, safetensors tensor names, optional ``model-0000k-of-0000n.safetensors`` shards with
``model.safetensors.index.json``, ``tokenizer.json`` + ``tokenizer_config.json`` with a chat template).

Modeling sources read (names, shapes and numerics below follow them; no code copied):

* LLaDA: ``NVlabs/Fast-dLLM`` ``v1/llada/model/{configuration_llada,modeling_llada}.py`` at upstream commit
  a9b81e4caa240c8cad4f7dc1889ff4852a0fca5b (same forward as the HF repo's ``modeling_llada.py``):
  ``LLaDAModel`` with ``LLaDALlamaBlock``, ``RMSLayerNorm``, ``RotaryEmbedding``.
* Dream: ``NVlabs/Fast-dLLM`` ``v1/dream/model/{configuration_dream,modeling_dream}.py`` at a9b81e4 (the HF
  ``modeling_dream.py`` plus cache arguments that are unused without a cache): ``DreamBaseModel``,
  ``DreamSdpaAttention``, ``DreamMLP``, ``DreamRMSNorm``, ``DreamRotaryEmbedding``.

Public helpers: ``write_llada_checkpoint``, ``write_dream_checkpoint``, ``corrupt_checkpoint``,
``load_checkpoint_tensors``, ``llada_tensor_shapes``, ``dream_tensor_shapes``, ``reference_llada_forward``,
``reference_dream_forward``.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

__all__ = [
    "write_llada_checkpoint", "write_dream_checkpoint", "corrupt_checkpoint", "load_checkpoint_tensors",
    "llada_tensor_shapes", "dream_tensor_shapes", "reference_llada_forward", "reference_dream_forward",
    "LLADA_SPECIAL_TOKENS", "DREAM_SPECIAL_TOKENS",
]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Random init (chosen so that a 2-layer d=64 model has clearly position-dependent, non-degenerate predictions:
# top-1 probabilities spread over roughly 0.1 .. 0.9 and argmax varies across masked positions).
EMBED_STD = 0.5       # token embeddings
HEAD_STD = 0.5        # output head (untied)
MATRIX_GAIN = 1.0     # projections: normal(0, MATRIX_GAIN / sqrt(fan_in))
QK_GAIN = 5.0         # q/k projections: sharper attention, so RoPE makes masked positions predict differently
BIAS_STD = 0.1        # Dream q/k/v biases
NORM_NOISE = 0.1      # norm weights = 1 + NORM_NOISE * normal
TIED_MASK_SCALE = 0.02  # tied embeddings: the mask row is shrunk so masked positions do not predict the mask

# token string -> role; ids are chosen by the writers
LLADA_SPECIAL_TOKENS = ("<|mdm_mask|>", "<|endoftext|>", "<|startoftext|>", "<|eot_id|>",
                        "<|start_header_id|>", "<|end_header_id|>")
DREAM_SPECIAL_TOKENS = ("<|mask|>", "<|endoftext|>", "<|beginoftext|>", "<|im_start|>", "<|im_end|>")
CHAR_POOL = "abcdefghijklmnopqrstuvwxyz0123456789 \n.,?!:;'\"-+=*/()<>_|%$#@&[]{}^~`\\\t"

LLADA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% else %}{{ eos_token }}{% endif %}"
)
DREAM_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% else %}{{ eos_token }}{% endif %}"
)

_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
                torch.float64: "float64"}


# ----------------------------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------------------------

def llada_tensor_shapes(*, vocab_size: int, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int,
                        mlp_hidden_size: int, weight_tying: bool, include_qkv_bias: bool = False
                        ) -> dict[str, tuple[int, ...]]:
    """Every tensor of a LLaDA checkpoint (``LLaDAModelLM`` → ``model.transformer``) with its shape."""
    head_dim = d_model // n_heads
    kv = n_kv_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.transformer.wte.weight": (vocab_size, d_model)}
    for i in range(n_layers):
        p = f"model.transformer.blocks.{i}."
        shapes.update({
            p + "attn_norm.weight": (d_model,),
            p + "q_proj.weight": (d_model, d_model),
            p + "k_proj.weight": (kv, d_model),
            p + "v_proj.weight": (kv, d_model),
            p + "attn_out.weight": (d_model, d_model),
            p + "ff_norm.weight": (d_model,),
            p + "ff_proj.weight": (mlp_hidden_size, d_model),
            p + "up_proj.weight": (mlp_hidden_size, d_model),
            p + "ff_out.weight": (d_model, mlp_hidden_size),
        })
        if include_qkv_bias:
            shapes.update({p + "q_proj.bias": (d_model,), p + "k_proj.bias": (kv,), p + "v_proj.bias": (kv,)})
    shapes["model.transformer.ln_f.weight"] = (d_model,)
    if not weight_tying:
        shapes["model.transformer.ff_out.weight"] = (vocab_size, d_model)
    return shapes


def dream_tensor_shapes(*, vocab_size: int, hidden_size: int, num_hidden_layers: int, num_attention_heads: int,
                        num_key_value_heads: int, intermediate_size: int, tie_word_embeddings: bool
                        ) -> dict[str, tuple[int, ...]]:
    """Every tensor of a Dream checkpoint (``DreamModel``: Qwen2 names) with its shape."""
    head_dim = hidden_size // num_attention_heads
    kv = num_key_value_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab_size, hidden_size)}
    for i in range(num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (hidden_size,),
            p + "self_attn.q_proj.weight": (hidden_size, hidden_size),
            p + "self_attn.q_proj.bias": (hidden_size,),
            p + "self_attn.k_proj.weight": (kv, hidden_size),
            p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, hidden_size),
            p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (hidden_size, hidden_size),
            p + "post_attention_layernorm.weight": (hidden_size,),
            p + "mlp.gate_proj.weight": (intermediate_size, hidden_size),
            p + "mlp.up_proj.weight": (intermediate_size, hidden_size),
            p + "mlp.down_proj.weight": (hidden_size, intermediate_size),
        })
    shapes["model.norm.weight"] = (hidden_size,)
    if not tie_word_embeddings:
        shapes["lm_head.weight"] = (vocab_size, hidden_size)
    return shapes


def _random_tensors(shapes: Mapping[str, tuple[int, ...]], *, seed: int, dtype: torch.dtype,
                    embed_name: str, head_name: str, mask_id: int) -> dict[str, torch.Tensor]:
    """Random weights. The mask token is kept from being predicted (real models never predict it): its head row
    is zero (logit exactly 0, far below the max), or with tied weights its embedding row is scaled down."""
    gen = torch.Generator().manual_seed(seed)
    tied = head_name not in shapes
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        if name == embed_name:
            t = torch.randn(shape, generator=gen) * EMBED_STD
            if tied:
                t[mask_id] *= TIED_MASK_SCALE
        elif name == head_name:
            t = torch.randn(shape, generator=gen) * HEAD_STD
            t[mask_id] = 0.0
        elif len(shape) == 1 and ("norm" in name or name.endswith("ln_f.weight")):
            t = 1.0 + NORM_NOISE * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # biases
            t = torch.randn(shape, generator=gen) * BIAS_STD
        else:
            gain = QK_GAIN if any(k in name for k in ("q_proj", "k_proj")) else MATRIX_GAIN
            t = torch.randn(shape, generator=gen) * (gain / math.sqrt(shape[1]))
        out[name] = t.to(dtype).contiguous()
    return out


# ----------------------------------------------------------------------------------------------------------------
# safetensors I/O
# ----------------------------------------------------------------------------------------------------------------

def _shard_names(n: int) -> list[str]:
    return [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]


def _save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], shards: int) -> None:
    if shards < 1:
        raise ValueError("shards must be >= 1")
    if shards == 1:
        save_file(dict(tensors), str(path / SINGLE_FILE), metadata={"format": "pt"})
        return
    names = list(tensors)
    if shards > len(names):
        raise ValueError(f"cannot split {len(names)} tensors into {shards} shards")
    files = _shard_names(shards)
    per, extra = divmod(len(names), shards)
    weight_map: dict[str, str] = {}
    start = 0
    for k, file in enumerate(files):
        count = per + (1 if k < extra else 0)
        chunk = names[start:start + count]
        start += count
        save_file({n: tensors[n] for n in chunk}, str(path / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in chunk})
    _write_index(path, weight_map, tensors)


def _write_index(path: Path, weight_map: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> None:
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (path / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def load_checkpoint_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint dir: via ``model.safetensors.index.json`` if present, else ``model.safetensors``."""
    path = Path(path)
    index_file = path / INDEX_FILE
    if index_file.is_file():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        tensors: dict[str, torch.Tensor] = {}
        for file in sorted(set(weight_map.values())):
            loaded = load_file(str(path / file))
            for name, file_of in weight_map.items():
                if file_of == file:
                    if name not in loaded:
                        raise KeyError(f"{name} is mapped to {file} but not stored there")
                    tensors[name] = loaded[name]
        return tensors
    single = path / SINGLE_FILE
    if single.is_file():
        return load_file(str(single))
    raise FileNotFoundError(f"{path} has neither {INDEX_FILE} nor {SINGLE_FILE}")


# ----------------------------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------------------------

def _assign_special_ids(vocab_size: int, specials: Sequence[tuple[str, Optional[int]]]) -> dict[str, int]:
    """Fixed ids where given; the rest take the highest free ids, in order."""
    fixed = {tok: i for tok, i in specials if i is not None}
    for tok, i in fixed.items():
        if not 0 <= i < vocab_size:
            raise ValueError(f"{tok} id {i} outside the vocabulary of size {vocab_size}")
    if len(set(fixed.values())) != len(fixed):
        raise ValueError(f"special token ids collide: {fixed}")
    if vocab_size < len(specials) + 1:
        raise ValueError(f"vocab_size {vocab_size} too small for {len(specials)} special tokens")
    taken = set(fixed.values())
    free = (i for i in range(vocab_size - 1, -1, -1) if i not in taken)
    ids = dict(fixed)
    for tok, i in specials:
        if i is None:
            ids[tok] = next(free)
            taken.add(ids[tok])
    return ids


def _write_tokenizer(path: Path, vocab_size: int, special_ids: Mapping[str, int],
                     tokenizer_config: Mapping[str, Any]) -> None:
    """A character-level BPE (no merges) ``tokenizer.json`` with exactly ``vocab_size`` entries + its config."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    by_id = {i: tok for tok, i in special_ids.items()}
    pool = iter(CHAR_POOL)
    vocab: dict[str, int] = {}
    filler = 0
    for i in range(vocab_size):
        if i in by_id:
            vocab[by_id[i]] = i
            continue
        ch = next(pool, None)
        if ch is None:
            ch = f"<|reserved_{filler}|>"
            filler += 1
        vocab[ch] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.normalizer = normalizers.Lowercase()
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, _ in sorted(special_ids.items(), key=lambda kv: kv[1])])
    if tok.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise AssertionError("tokenizer vocabulary size mismatch")
    tok.save(str(path / "tokenizer.json"))

    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": True}
            for t, i in sorted(special_ids.items(), key=lambda kv: kv[1])
        },
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        **tokenizer_config,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------------------------

def write_llada_checkpoint(path: str | Path, *, vocab_size: int = 64, d_model: int = 64, n_layers: int = 2,
                           n_heads: int = 4, n_kv_heads: Optional[int] = None, mlp_hidden_size: int = 128,
                           rope_theta: float = 10000.0, weight_tying: bool = False,
                           mask_token_id: Optional[int] = None, eos_token_id: Optional[int] = None,
                           seed: int = 0, dtype: torch.dtype = torch.float32, shards: int = 1,
                           max_sequence_length: int = 4096, include_qkv_bias: bool = False,
                           config_overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Write a random LLaDA checkpoint (config.json mirrors GSAI-ML/LLaDA-8B-Instruct) and return its dir.

    Default ids: ``mask_token_id = vocab_size - 1``, ``eos_token_id = vocab_size - 2`` (``pad_token_id = eos``,
    as in the 8B config); the tokenizer also holds ``<|startoftext|>``, ``<|eot_id|>``, ``<|start_header_id|>``,
    ``<|end_header_id|>`` at the next highest free ids. ``config_overrides`` is merged last (e.g. to set a flag
    the engine must reject).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    n_kv = n_heads if n_kv_heads is None else n_kv_heads
    if d_model % n_heads or n_heads % n_kv:
        raise ValueError("d_model must divide by n_heads and n_heads by n_kv_heads")
    mask_id = vocab_size - 1 if mask_token_id is None else mask_token_id
    eos_id = (vocab_size - 2 if mask_id != vocab_size - 2 else vocab_size - 1) if eos_token_id is None \
        else eos_token_id
    ids = _assign_special_ids(vocab_size, [("<|mdm_mask|>", mask_id), ("<|endoftext|>", eos_id),
                                           ("<|startoftext|>", None), ("<|eot_id|>", None),
                                           ("<|start_header_id|>", None), ("<|end_header_id|>", None)])

    config: dict[str, Any] = {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": d_model,
        "embedding_dropout": 0.0,
        "embedding_size": vocab_size,
        "eos_token_id": eos_id,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": include_qkv_bias,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": mask_id,
        "max_sequence_length": max_sequence_length,
        "mlp_hidden_size": mlp_hidden_size,
        "mlp_ratio": 4,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "n_layers": n_layers,
        "pad_token_id": eos_id,
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-05,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": float(rope_theta),
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": vocab_size,
        "weight_tying": weight_tying,
    }
    config.update(config_overrides or {})
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    shapes = llada_tensor_shapes(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                 n_kv_heads=n_kv, mlp_hidden_size=mlp_hidden_size, weight_tying=weight_tying,
                                 include_qkv_bias=include_qkv_bias)
    tensors = _random_tensors(shapes, seed=seed, dtype=dtype, embed_name="model.transformer.wte.weight",
                              head_name="model.transformer.ff_out.weight", mask_id=mask_id)
    _save_tensors(path, tensors, shards)

    _write_tokenizer(path, vocab_size, ids, {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "chat_template": LLADA_CHAT_TEMPLATE,
        "model_max_length": max_sequence_length,
    })
    return path


def write_dream_checkpoint(path: str | Path, *, vocab_size: int = 64, hidden_size: int = 64,
                           num_hidden_layers: int = 2, num_attention_heads: int = 4, num_key_value_heads: int = 2,
                           intermediate_size: int = 128, rope_theta: float = 10000.0,
                           tie_word_embeddings: bool = False, mask_token_id: Optional[int] = None,
                           eos_token_id: Optional[int] = None, pad_token_id: Optional[int] = None,
                           seed: int = 0, dtype: torch.dtype = torch.float32, shards: int = 1,
                           max_position_embeddings: int = 131072,
                           config_overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Write a random Dream checkpoint (config.json mirrors Dream-org/Dream-v0-Instruct-7B) and return its dir.

    Default ids: ``mask_token_id = vocab_size - 1``, ``eos_token_id = vocab_size - 2``, ``pad_token_id = eos``,
    ``bos_token_id = eos`` in config.json (as the 7B config has 151643 for all three); the tokenizer also holds
    ``<|beginoftext|>`` (tokenizer bos), ``<|im_start|>``, ``<|im_end|>`` (and ``<|dlm_pad|>`` if pad != eos).
    Also writes ``generation_config.json`` like the HF repo's (``alg: origin``, ``steps: 512``, ``mask_token_id:
    null``).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if hidden_size % num_attention_heads or num_attention_heads % num_key_value_heads:
        raise ValueError("hidden_size must divide by heads and heads by kv heads")
    mask_id = vocab_size - 1 if mask_token_id is None else mask_token_id
    eos_id = (vocab_size - 2 if mask_id != vocab_size - 2 else vocab_size - 1) if eos_token_id is None \
        else eos_token_id
    pad_id = eos_id if pad_token_id is None else pad_token_id
    specials: list[tuple[str, Optional[int]]] = [("<|mask|>", mask_id), ("<|endoftext|>", eos_id)]
    if pad_id != eos_id:
        specials.append(("<|dlm_pad|>", pad_id))
    specials += [("<|beginoftext|>", None), ("<|im_start|>", None), ("<|im_end|>", None)]
    ids = _assign_special_ids(vocab_size, specials)

    config: dict[str, Any] = {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        },
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "mask_token_id": mask_id,
        "max_position_embeddings": max_position_embeddings,
        "max_window_layers": num_hidden_layers,
        "model_type": "Dream",
        "num_attention_heads": num_attention_heads,
        "num_hidden_layers": num_hidden_layers,
        "num_key_value_heads": num_key_value_heads,
        "pad_token_id": pad_id,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": float(rope_theta),
        "sliding_window": None,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", "")),
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }
    config.update(config_overrides or {})
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation_config = {
        "_from_model_config": True, "alg": "origin", "alg_temp": None, "bos_token_id": eos_id,
        "eos_token_id": eos_id, "eps": 0.001, "mask_token_id": None, "output_history": False,
        "pad_token_id": pad_id, "steps": 512, "temperature": 0.0, "top_k": None, "top_p": None,
        "transformers_version": "4.46.2",
    }
    (path / "generation_config.json").write_text(json.dumps(generation_config, indent=2) + "\n")

    shapes = dream_tensor_shapes(vocab_size=vocab_size, hidden_size=hidden_size,
                                 num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                                 num_key_value_heads=num_key_value_heads, intermediate_size=intermediate_size,
                                 tie_word_embeddings=tie_word_embeddings)
    tensors = _random_tensors(shapes, seed=seed, dtype=dtype, embed_name="model.embed_tokens.weight",
                              head_name="lm_head.weight", mask_id=mask_id)
    _save_tensors(path, tensors, shards)

    _write_tokenizer(path, vocab_size, ids, {
        "bos_token": "<|beginoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>" if pad_id == eos_id else "<|dlm_pad|>",
        "mask_token": "<|mask|>",
        "chat_template": DREAM_CHAT_TEMPLATE,
        "model_max_length": max_position_embeddings,
    })
    return path


# ----------------------------------------------------------------------------------------------------------------
# damage
# ----------------------------------------------------------------------------------------------------------------

def corrupt_checkpoint(src: str | Path, dst: str | Path, *, drop: Iterable[str] = (),
                       rename: Optional[Mapping[str, str]] = None,
                       reshape: Optional[Mapping[str, Sequence[int]]] = None,
                       remove_files: Iterable[str] = (),
                       config_updates: Optional[Mapping[str, Any]] = None) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with damage, keeping its single-file or sharded layout.

    ``drop``: tensor names removed (from their file and the index); ``rename``: old → new name (same file);
    ``reshape``: name → new shape (values: the old ones flattened, tiled/truncated); ``remove_files``: files deleted
    from ``dst`` afterwards (e.g. a shard, ``tokenizer.json``); ``config_updates`` merged into ``config.json``
    (a value of ``None`` deletes the key). Unknown tensor names raise ``KeyError``.
    """
    src, dst = Path(src), Path(dst)
    drop, rename, reshape = set(drop), dict(rename or {}), dict(reshape or {})
    shutil.copytree(src, dst, dirs_exist_ok=True)

    index_file = dst / INDEX_FILE
    if index_file.is_file():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
    else:
        weight_map = {name: SINGLE_FILE for name in load_file(str(dst / SINGLE_FILE))}
    unknown = (drop | set(rename) | set(reshape)) - set(weight_map)
    if unknown:
        raise KeyError(f"not in the checkpoint: {sorted(unknown)}")

    new_map: dict[str, str] = {}
    all_tensors: dict[str, torch.Tensor] = {}
    for file in sorted(set(weight_map.values())):
        tensors = load_file(str(dst / file))
        out: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            if name in drop:
                continue
            if name in reshape:
                shape = tuple(int(s) for s in reshape[name])
                numel = math.prod(shape)
                flat = t.reshape(-1)
                reps = -(-numel // max(flat.numel(), 1))
                t = flat.repeat(max(reps, 1))[:numel].reshape(shape).contiguous()
            out[rename.get(name, name)] = t
        save_file(out, str(dst / file), metadata={"format": "pt"})
        new_map.update({n: file for n in out})
        all_tensors.update(out)
    if index_file.is_file():
        _write_index(dst, new_map, all_tensors)

    for file in remove_files:
        (dst / file).unlink()
    if config_updates:
        cfg = json.loads((dst / "config.json").read_text())
        for key, value in config_updates.items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return dst


# ----------------------------------------------------------------------------------------------------------------
# reference forward passes
# ----------------------------------------------------------------------------------------------------------------

def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LLaDA ``RMSLayerNorm`` / Dream ``DreamRMSNorm``: normalise in float32, cast back, then ``weight * x``."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(t: torch.Tensor) -> torch.Tensor:
    half = t.shape[-1] // 2
    return torch.cat((-t[..., half:], t[..., :half]), dim=-1)


def _rope_angles(seq_len: int, head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """(seq_len, head_dim) float32 angles ``pos * theta ** (-2i / d)``, halves repeated (``cat(freqs, freqs)``)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float) / head_dim))
    pos = torch.arange(seq_len, device=device, dtype=torch.float)
    freqs = torch.outer(pos, inv_freq)
    return torch.cat((freqs, freqs), dim=-1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: str) -> torch.Tensor:
    """Full bidirectional attention, scale 1/sqrt(head_dim); q (B, H, T, d), k/v already repeated to H heads."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False)
    if impl == "eager":  # Dream's DreamAttention path: float32 softmax, cast back
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(q.shape[-1])
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, v)
    raise ValueError(f"unknown attention implementation {impl!r}")


def _load_config(path: Path) -> dict[str, Any]:
    return json.loads((path / "config.json").read_text())


def _weights(path: Path, dtype: Optional[torch.dtype]) -> dict[str, torch.Tensor]:
    tensors = load_checkpoint_tensors(path)
    if dtype is not None:
        tensors = {n: t.to(dtype) for n, t in tensors.items()}
    return tensors


def _unsupported(model: str, problems: list[str]) -> None:
    if problems:
        raise NotImplementedError(f"reference {model} forward does not support: " + "; ".join(problems))


# defaults of LLaDA's ModelConfig dataclass, used for keys a config.json leaves out (as LLaDAConfig does)
_LLADA_DEFAULTS: dict[str, Any] = {
    "n_kv_heads": None, "multi_query_attention": None, "mlp_ratio": 4, "mlp_hidden_size": None,
    "activation_type": "swiglu", "block_type": "sequential", "block_group_size": 1, "alibi": False, "rope": False,
    "rope_full_precision": True, "attention_layer_norm": False, "input_emb_norm": False, "layer_norm_type": "default",
    "layer_norm_with_affine": True, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "include_qkv_bias": False,
    "include_bias": False, "bias_for_layer_norm": None, "scale_logits": False, "weight_tying": True,
}


def reference_llada_forward(path: str | Path, *, dtype: Optional[torch.dtype] = None,
                            attn_impl: str = "sdpa") -> Callable[[torch.Tensor], torch.Tensor]:
    """Independent LLaDA forward (``LLaDAModelLM`` with ``LLaDALlamaBlock``) reading tensors by name.

    Per block: ``h = x + attn_out(attn(RMS(x)))``; ``x = h + ff_out(silu(ff_proj(RMS(h))) * up_proj(RMS(h)))``.
    RMSNorm in float32 then ``weight * x.to(dtype)``; RoPE (rotate-half, theta from config) applied in float32 when
    ``rope_full_precision`` (the 8B default) and cast back; GQA by ``repeat_interleave``; full bidirectional SDPA
    (scale 1/sqrt(head_dim), no mask); head ``model.transformer.ff_out`` or, with ``weight_tying``, ``wte``.
    Returns raw (unshifted) logits (B, L, embedding_size) in the weights' dtype (``dtype`` casts them first).
    The returned function also takes Fast-dLLM's KV-cache arguments (``kv``, ``start``; see its docstring).
    Keys missing from config.json take ``ModelConfig``'s defaults (note: ``weight_tying`` defaults to True there).

    Not supported (NotImplementedError): ``include_bias``, ``bias_for_layer_norm``, ``scale_logits``,
    ``input_emb_norm``, ``attention_layer_norm`` (QK-norm), ``alibi``, ``rope: false``, ``block_type`` other than
    ``llama``, ``layer_norm_type`` other than ``rms``, ``activation_type`` other than ``silu`` (``swiglu`` with the
    llama block halves ff_out's input and breaks the ``* up_proj`` product upstream), ``block_group_size != 1``,
    ``layer_norm_with_affine: false``. Supported extras: ``include_qkv_bias``, GQA/MQA, ``rope_full_precision:
    false`` (RoPE in the activations' dtype).
    """
    path = Path(path)
    cfg = {**_LLADA_DEFAULTS, **_load_config(path)}
    problems = []
    for key, want in (("include_bias", False), ("scale_logits", False), ("input_emb_norm", False),
                      ("attention_layer_norm", False), ("alibi", False), ("rope", True), ("block_type", "llama"),
                      ("layer_norm_type", "rms"), ("activation_type", "silu"), ("block_group_size", 1),
                      ("layer_norm_with_affine", True)):
        if cfg[key] != want:
            problems.append(f"{key}={cfg[key]!r}")
    if cfg["bias_for_layer_norm"]:
        problems.append(f"bias_for_layer_norm={cfg['bias_for_layer_norm']!r}")
    _unsupported("LLaDA", problems)

    d_model, n_heads, n_layers = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    if cfg["n_kv_heads"] is None:
        n_kv = 1 if cfg["multi_query_attention"] else n_heads
    else:
        n_kv = cfg["n_kv_heads"]
        if cfg["multi_query_attention"] is not None and n_kv != (1 if cfg["multi_query_attention"] else n_heads):
            raise ValueError("multi_query_attention and n_kv_heads disagree")
    head_dim = d_model // n_heads
    eps, theta = float(cfg["rms_norm_eps"]), float(cfg["rope_theta"])
    full_precision_rope = bool(cfg["rope_full_precision"])
    qkv_bias = bool(cfg["include_qkv_bias"])
    W = _weights(path, dtype)
    wte = W["model.transformer.wte.weight"]
    head = wte if cfg["weight_tying"] else W["model.transformer.ff_out.weight"]

    def rope(q: torch.Tensor, k: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys at positions [0, len(k)), queries at [start, start + len(q))."""
        q_, k_ = (q.float(), k.float()) if full_precision_rope else (q, k)
        ang = _rope_angles(k_.shape[-2], head_dim, theta, q.device)
        sin, cos = ang.sin().type_as(q_), ang.cos().type_as(q_)
        qs = slice(start, start + q_.shape[-2])
        q_ = ((q_ * cos[qs]) + (_rotate_half(q_) * sin[qs])).to(q_.dtype)
        k_ = ((k_ * cos) + (_rotate_half(k_) * sin)).to(k_.dtype)
        return q_.type_as(q), k_.type_as(k)

    @torch.no_grad()
    def forward(input_ids: torch.Tensor, kv: Optional[list] = None, start: int = 0) -> torch.Tensor:
        """Logits (B, T, V) of input_ids; ``kv`` is Fast-dLLM's ``past_key_values`` (pre-RoPE K/V per layer).

        ``kv=None``: plain forward. ``kv=[]``: full forward that appends each layer's (K, V) (B, n_kv, T, d).
        A filled ``kv``: input_ids are the tokens at positions [start, start + T); per layer their fresh K/V
        replace the cached ones there (appending past the cache's end, as ``torch.cat`` with ``past_key_values``)
        and are stored back into ``kv`` (as ``replace_position``'s in-place write); queries attend to every cached
        key, keys take RoPE at [0, len(K)) and queries at [start, start + T).
        """
        batch, seq = input_ids.shape
        fill = kv is not None and not kv
        x = F.embedding(input_ids, wte)
        for i in range(n_layers):
            p = f"model.transformer.blocks.{i}."
            h = _rms_norm(x, W[p + "attn_norm.weight"], eps)
            q = F.linear(h, W[p + "q_proj.weight"], W[p + "q_proj.bias"] if qkv_bias else None)
            k = F.linear(h, W[p + "k_proj.weight"], W[p + "k_proj.bias"] if qkv_bias else None)
            v = F.linear(h, W[p + "v_proj.weight"], W[p + "v_proj.bias"] if qkv_bias else None)
            q = q.view(batch, seq, n_heads, head_dim).transpose(1, 2)
            k = k.view(batch, seq, n_kv, head_dim).transpose(1, 2)
            v = v.view(batch, seq, n_kv, head_dim).transpose(1, 2)
            if fill:
                kv.append((k, v))
            elif kv is not None:
                K, V = kv[i]
                k = torch.cat([K[:, :, :start], k, K[:, :, start + seq:]], dim=2)
                v = torch.cat([V[:, :, :start], v, V[:, :, start + seq:]], dim=2)
                kv[i] = (k, v)
            q, k = rope(q, k, start)
            if n_kv != n_heads:
                k = k.repeat_interleave(n_heads // n_kv, dim=1, output_size=n_heads)
                v = v.repeat_interleave(n_heads // n_kv, dim=1, output_size=n_heads)
            att = _attend(q, k, v, attn_impl).transpose(1, 2).contiguous().view(batch, seq, d_model)
            x = x + F.linear(att, W[p + "attn_out.weight"])
            h = _rms_norm(x, W[p + "ff_norm.weight"], eps)
            ff = F.silu(F.linear(h, W[p + "ff_proj.weight"])) * F.linear(h, W[p + "up_proj.weight"])
            x = x + F.linear(ff, W[p + "ff_out.weight"])
        x = _rms_norm(x, W["model.transformer.ln_f.weight"], eps)
        return F.linear(x, head)

    forward.config = cfg  # type: ignore[attr-defined]
    return forward


# defaults of DreamConfig.__init__, used for keys a config.json leaves out
_DREAM_DEFAULTS: dict[str, Any] = {
    "num_key_value_heads": 32, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "rope_scaling": None, "tie_word_embeddings": False, "use_sliding_window": False,
}


def reference_dream_forward(path: str | Path, *, dtype: Optional[torch.dtype] = None,
                            attn_impl: str = "sdpa") -> Callable[[torch.Tensor], torch.Tensor]:
    """Independent Dream forward (``DreamModel`` = Qwen2 weights, bidirectional) reading tensors by name.

    Per layer: ``h = x + o_proj(attn(RMS(x)))`` with q/k/v biases; ``x = h + down(silu(gate(RMS(h))) *
    up(RMS(h)))``. RMSNorm in float32 then ``weight * x.to(dtype)``; RoPE cos/sin computed in float32 for positions
    ``0..L-1``, cast to the activations' dtype and applied in that dtype (unlike LLaDA's full-precision RoPE); GQA by
    ``repeat_kv``; full SDPA without mask (``attention_mask="full"``), scale 1/sqrt(head_dim); head ``lm_head`` or,
    with ``tie_word_embeddings``, ``embed_tokens``. Returns the RAW UNSHIFTED logits (B, L, V): the prediction for
    position i is at i-1 (the sampler shifts).

    Not supported (NotImplementedError): ``rope_scaling`` (non-default RoPE), ``use_sliding_window: true``,
    ``hidden_act`` other than ``silu``, padding / ``attention_mask`` / custom position ids.
    """
    path = Path(path)
    cfg = {**_DREAM_DEFAULTS, **_load_config(path)}
    problems = []
    if cfg["rope_scaling"]:
        problems.append(f"rope_scaling={cfg['rope_scaling']!r}")
    if cfg["use_sliding_window"]:
        problems.append("use_sliding_window=True")
    if cfg["hidden_act"] != "silu":
        problems.append(f"hidden_act={cfg['hidden_act']!r}")
    _unsupported("Dream", problems)

    hidden, n_heads, n_layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    n_kv = cfg["num_key_value_heads"] or n_heads
    head_dim = hidden // n_heads
    eps, theta = float(cfg["rms_norm_eps"]), float(cfg["rope_theta"])
    W = _weights(path, dtype)
    embed = W["model.embed_tokens.weight"]
    head = embed if cfg["tie_word_embeddings"] else W["lm_head.weight"]

    @torch.no_grad()
    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        batch, seq = input_ids.shape
        x = F.embedding(input_ids, embed)
        ang = _rope_angles(seq, head_dim, theta, x.device)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        for i in range(n_layers):
            p = f"model.layers.{i}."
            h = _rms_norm(x, W[p + "input_layernorm.weight"], eps)
            q = F.linear(h, W[p + "self_attn.q_proj.weight"], W[p + "self_attn.q_proj.bias"])
            k = F.linear(h, W[p + "self_attn.k_proj.weight"], W[p + "self_attn.k_proj.bias"])
            v = F.linear(h, W[p + "self_attn.v_proj.weight"], W[p + "self_attn.v_proj.bias"])
            q = q.view(batch, seq, n_heads, head_dim).transpose(1, 2)
            k = k.view(batch, seq, n_kv, head_dim).transpose(1, 2)
            v = v.view(batch, seq, n_kv, head_dim).transpose(1, 2)
            q = (q * cos) + (_rotate_half(q) * sin)
            k = (k * cos) + (_rotate_half(k) * sin)
            if n_kv != n_heads:
                rep = n_heads // n_kv
                k = k[:, :, None].expand(batch, n_kv, rep, seq, head_dim).reshape(batch, n_heads, seq, head_dim)
                v = v[:, :, None].expand(batch, n_kv, rep, seq, head_dim).reshape(batch, n_heads, seq, head_dim)
            att = _attend(q, k, v, attn_impl).transpose(1, 2).contiguous().view(batch, seq, hidden)
            x = x + F.linear(att, W[p + "self_attn.o_proj.weight"])
            h = _rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            ff = F.silu(F.linear(h, W[p + "mlp.gate_proj.weight"])) * F.linear(h, W[p + "mlp.up_proj.weight"])
            x = x + F.linear(ff, W[p + "mlp.down_proj.weight"])
        x = _rms_norm(x, W["model.norm.weight"], eps)
        return F.linear(x, head)

    forward.config = cfg  # type: ignore[attr-defined]
    return forward
