"""Run setup, checkpoints and resume state for `unmask train`, with no pickles anywhere.

`out/` holds the shippable checkpoint in the official LLaDA layout (config.json + model.safetensors, read
back by `unmask.models.loader`), the char tokenizer, the model card (README.md), a JSON-lines log, and the
resume state in `train_state/`: `moments.safetensors` (AdamW moments) + `state.json` (step, config, wall time).
`export(out, dest)` copies only the shippable files.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from unmask.bench.tasks import Task, get_task
from unmask.errors import CheckpointError, ConfigError
from unmask.models.latent import CHECKPOINT_NAMES as LATENT_NAMES
from unmask.models.loader import parse_config, save_model
from unmask.models.transformer import DecoderLM
from unmask.train.char_tokenizer import DEFAULT_CHARS, EOS_ID, MASK_ID, PAD_ID, char_vocab, save_char_tokenizer
from unmask.train.data import Pair, encode_examples

STATE_TENSORS, STATE_JSON, LOG = "train_state/moments.safetensors", "train_state/state.json", "train_log.jsonl"
HISTORY = "commands.txt"  # one line per `unmask train` invocation on the run directory
SHIPPED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md")
RUN_FILES = SHIPPED + (LOG, HISTORY, STATE_JSON, STATE_TENSORS)
ARCH_FIELDS = ("task", "train_size", "task_max_steps", "d_model", "n_layers", "n_heads", "ffn_hidden",
               "max_seq_len", "seed", "batch_size", "objective", "block_size", "conditioning")


def llada_config(cfg: Any) -> dict[str, Any]:
    """config.json in the keys `unmask.models.llada.from_config` reads (the published LLaDA layout)."""
    vocab = len(char_vocab(DEFAULT_CHARS))
    return {"architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": cfg.d_model,
            "n_heads": cfg.n_heads, "n_kv_heads": cfg.n_heads, "n_layers": cfg.n_layers,
            "mlp_hidden_size": cfg.ffn_hidden, "vocab_size": vocab, "embedding_size": vocab,
            "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": False, "mask_token_id": MASK_ID,
            "eos_token_id": EOS_ID, "pad_token_id": PAD_ID, "max_sequence_length": cfg.max_seq_len,
            "block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms",
            **({"block_size": cfg.block_size} if getattr(cfg, "objective", "mdlm") == "bd3" else {}),
            **({"is_causal": True} if getattr(cfg, "objective", "mdlm") == "ar" else {}),
            **({"latent_conditioning": {"features": cfg.conditioning}} if getattr(cfg, "conditioning", None) else {})}


def make_task(cfg: Any, test_size: int = 500) -> Task:
    kwargs: dict[str, Any] = {"size": {"train": cfg.train_size, "test": test_size}}
    if cfg.task_max_steps is not None:
        kwargs["max_steps"] = cfg.task_max_steps
    return get_task(cfg.task, **kwargs)


def init_weights(model: DecoderLM, seed: int) -> None:
    """GPT-style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2·n_layers); norms = 1."""
    gen = torch.Generator().manual_seed(seed)
    out_std = 0.02 / math.sqrt(2 * model.cfg.n_layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim < 2:
                p.fill_(1.0)
            else:
                std = out_std if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                p.copy_(torch.randn(p.shape, generator=gen) * std)


@dataclass
class RunSetup:
    task: Task
    pairs: list[Pair]
    config_json: dict[str, Any]
    names: dict[str, str]  # checkpoint tensor name -> parameter name
    model: DecoderLM

    @classmethod
    def build(cls, cfg: Any) -> "RunSetup":
        task = make_task(cfg)
        pairs = encode_examples(task, "train", cfg.train_size)
        longest = max(len(p) + len(a) for p, a in pairs)
        if longest > cfg.max_seq_len:
            raise ConfigError(f"max_seq_len {cfg.max_seq_len} < longest prompt + gen_length ({longest})")
        config_json = llada_config(cfg)
        arch, _, names = parse_config(config_json)
        model = DecoderLM(arch)
        init_weights(model, cfg.seed)
        if cfg.init_from:
            load_weights(model, names, cfg.init_from, config_json)
        return cls(task, pairs, config_json, names, model)


def load_weights(model: DecoderLM, names: dict[str, str], source: str | Path, config_json: dict[str, Any]) -> None:
    """Copy the weights of the checkpoint in `source` into `model`; its config.json must describe the same model."""
    source = Path(source)
    if not (source / "config.json").is_file() or not (source / "model.safetensors").is_file():
        raise ConfigError(f"init_from {source}: need config.json and model.safetensors there")
    theirs = json.loads((source / "config.json").read_text())
    keys = ("d_model", "n_heads", "n_kv_heads", "n_layers", "mlp_hidden_size", "vocab_size", "embedding_size",
            "weight_tying", "mask_token_id")
    differ = [f"{k} {theirs.get(k)!r} != {config_json[k]!r}" for k in keys if theirs.get(k) != config_json[k]]
    if differ:
        raise ConfigError(f"init_from {source}: a different model ({'; '.join(differ)})")
    weights = load_file(str(source / "model.safetensors"))
    fresh = set(LATENT_NAMES) - set(weights)    # a λ-conditioned student of a plain teacher: its λ input is new
    missing = sorted(set(names) - set(weights) - fresh)
    if missing:
        raise ConfigError(f"init_from {source}: missing tensors {', '.join(missing[:5])}")
    copy_weights(model, {k: v for k, v in names.items() if k not in fresh}, weights)
    if fresh and getattr(model, "latent", None) is not None:
        with torch.no_grad():   # zero: the student starts as its teacher, whatever λ it is fed
            for p in model.latent.parameters():
                p.zero_()


def copy_weights(model: nn.Module, names: dict[str, str], weights: dict[str, torch.Tensor]) -> None:
    """Copy checkpoint tensors into the model's parameters; names: checkpoint name -> parameter name."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for theirs, ours in names.items():
            params[ours].copy_(weights[theirs])


def read_history(out: str | Path) -> str:
    """The `unmask train` invocations recorded in a run directory, one per line."""
    path = Path(out) / HISTORY
    return path.read_text().strip() if path.is_file() else "(not recorded)"


def read_state(out: str | Path) -> dict[str, Any]:
    """A run's saved train state (step, wall_s, config), or {} where there is none; CheckpointError if damaged."""
    path = Path(out) / STATE_JSON
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the train state is damaged") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} must be an object with \"step\" and \"config\"; the train state is damaged")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: step must be an int ≥ 0, got {step!r}; the train state is damaged")
    wall = meta.get("wall_s", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not math.isfinite(wall):
        raise CheckpointError(f"{path}: wall_s must be a number of seconds, got {wall!r}; the train state is damaged")
    return meta


def has_state(out: str | Path) -> bool:
    """Whether `out` holds a resumable train state; CheckpointError when only part of one is there."""
    present = [(Path(out) / f).is_file() for f in (STATE_JSON, STATE_TENSORS, "model.safetensors")]
    if any(present[:2]) and not all(present):
        missing = [f for f, there in zip((STATE_JSON, STATE_TENSORS, "model.safetensors"), present) if not there]
        raise CheckpointError(f"the train state in {out} is incomplete: {', '.join(missing)} missing; "
                              "rerun without --resume (and with --overwrite) to start over")
    return all(present)


def run_files(out: str | Path) -> list[str]:
    """The files of an earlier `unmask train` run present in `out`."""
    return [f for f in RUN_FILES if (Path(out) / f).is_file()]


def clear_run(out: str | Path) -> None:
    """Delete an earlier run's files from `out` (--overwrite); other files stay."""
    for name in run_files(out):
        (Path(out) / name).unlink()
    state_dir = (Path(out) / STATE_JSON).parent
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing; the train state cannot be resumed without it")
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors raises its own types for truncated or garbled files
        raise CheckpointError(f"{file} is not a readable safetensors file ({str(e)[:120]}); "
                              "the train state is damaged") from None


def save(cfg: Any, run: RunSetup, model: nn.Module, opt: torch.optim.Optimizer, step: int, wall_s: float) -> None:
    """Write the LLaDA-layout checkpoint, tokenizer and resume state (step, AdamW moments, wall time)."""
    out = Path(cfg.out)
    save_model(model, run.names, out, run.config_json)
    save_char_tokenizer(out)
    by_id = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for p, state in opt.state.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            tensors[f"{by_id[id(p)]}.{key}"] = torch.as_tensor(state[key]).detach().float().cpu().contiguous()
    (out / STATE_TENSORS).parent.mkdir(parents=True, exist_ok=True)  # a subfolder: the loader globs out/*.safetensors
    save_file(tensors, str(out / STATE_TENSORS))
    meta = {"step": step, "wall_s": wall_s, "config": cfg.to_dict()}
    (out / STATE_JSON).write_text(json.dumps(meta, indent=2) + "\n")


def load_state(out: str | Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: Any) -> tuple[int, float]:
    """Restore weights and AdamW state saved by `save`; returns (step to continue from, wall seconds so far).

    Every tensor is checked (present, shaped like its parameter) before anything is copied; a damaged state
    raises CheckpointError naming the file."""
    out = Path(out)
    meta = read_state(out)
    older = {"objective": "mdlm", "block_size": 16}   # runs saved before these fields existed
    changed = [k for k in ARCH_FIELDS if meta["config"].get(k, older.get(k)) != getattr(cfg, k, None)]
    if changed:
        raise ConfigError(f"cannot resume {out}: {', '.join(changed)} differ from the saved run")
    names = parse_config(llada_config(cfg))[2]
    weights, moments = _read_tensors(out / "model.safetensors"), _read_tensors(out / STATE_TENSORS)
    params = dict(model.named_parameters())
    wanted = {theirs: (out / "model.safetensors", tuple(params[ours].shape)) for theirs, ours in names.items()}
    for name, p in params.items():
        wanted.update({f"{name}.{k}": (out / STATE_TENSORS, tuple(p.shape)) for k in ("exp_avg", "exp_avg_sq")})
        wanted[f"{name}.step"] = (out / STATE_TENSORS, ())
    for key, (file, shape) in wanted.items():
        tensors = weights if file.name == "model.safetensors" else moments
        if key not in tensors:
            raise CheckpointError(f"{file} lacks {key}; the train state is incomplete")
        got = tensors[key]
        if (got.numel() != 1) if shape == () else (tuple(got.shape) != shape):
            raise CheckpointError(f"{file}: {key} has shape {list(got.shape)}, the model needs {list(shape)}")
    copy_weights(model, names, weights)
    for name, p in params.items():
        opt.state[p] = {"step": moments[f"{name}.step"].reshape(()),
                        "exp_avg": moments[f"{name}.exp_avg"].to(p), "exp_avg_sq": moments[f"{name}.exp_avg_sq"].to(p)}
    return meta["step"], float(meta.get("wall_s", 0.0))


class Log:
    """Append-only JSON lines in out/train_log.jsonl."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def export(out: str | Path, dest: str | Path) -> Path:
    """Copy the shippable files (no train state, no log) into `dest`, e.g. unmask/assets/tiny-arith."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        if (Path(out) / name).is_file():
            shutil.copy2(Path(out) / name, dest / name)
    return dest
