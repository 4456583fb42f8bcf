"""Load a checkpoint directory (config.json + safetensors, sharded or not) into a native model, strictly.

The model is built on the meta device and every parameter is assigned from the file by name through the
architecture's name map; missing, unexpected and mis-shaped tensors are all reported in one CheckpointError.
Pickled weights (`*.bin`, `*.pt`) are never loaded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from unmask.errors import CheckpointError
from unmask.models.fused import fuse_projections
from unmask.models.registry import arch_module
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig, DecoderLM

MAX_NAMES = 20  # names listed per category in an error
MAX_ROPE_TABLE_BYTES = 4 * 2**30  # the rotary cos/sin tables are allocated for the whole declared context
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")  # safetensors dtype names we cast from
SINGLE_FILE, INDEX_FILE = "model.safetensors", "model.safetensors.index.json"


def confined(root: Path, name: str | Path, what: str = "file") -> Path:
    """root/name, refusing names that leave `root` (absolute, "..") and symlinks that resolve outside it.

    A Hugging Face cache snapshot links its files to ../../blobs/<hash>; that folder counts as inside.
    """
    name = Path(name)
    if name.is_absolute() or ".." in name.parts:
        raise CheckpointError(f"{what} {str(name)!r} points outside the model directory {root}")
    real_root = root.resolve()
    allowed = [real_root] + ([real_root.parent.parent / "blobs"] if real_root.parent.name == "snapshots" else [])
    target = (root / name).resolve()
    if not any(target == a or a in target.parents for a in allowed):
        raise CheckpointError(f"{what} {str(root / name)!r} resolves to {str(target)!r}, outside the model "
                              f"directory {root}")
    return root / name


def read_json(path: Path, name: str, kind: type = dict) -> Any:
    """The parsed JSON file path/name (confined to path), which must be a `kind`; CheckpointError naming it."""
    file = confined(path, name)
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from None
    except OSError as e:
        raise CheckpointError(f"{file} cannot be read: {e.strerror or e}") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{file} must hold a JSON {'object' if kind is dict else kind.__name__}, "
                              f"got {type(value).__name__}")
    return value


def read_config(path: Path) -> dict:
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has no config.json")
    return read_json(path, "config.json")


def parse_config(cfg: dict) -> tuple[ArchConfig, DiffusionSpec, dict[str, str]]:
    """config.json → (architecture config, diffusion spec, checkpoint name → parameter name), all checked."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"config.json must hold a JSON object, got {type(cfg).__name__}")
    module = arch_module(cfg)
    try:
        arch, spec = module.from_config(cfg)
        arch.check()
    except KeyError as e:
        raise CheckpointError(f"config.json lacks required key {e.args[0]!r} for {module.ARCHITECTURES[0]}") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"config.json: {e}") from None
    _check_sizes(arch, spec)
    return arch, spec, module.name_map(arch)


def _check_sizes(arch: ArchConfig, spec: DiffusionSpec) -> None:
    """Special ids inside the embedding; a context whose rotary tables can be allocated."""
    ids = [("mask_token_id", spec.mask_id)] if spec.corruption == "mask" else []
    ids += [("eos_token_id", i) for i in spec.eos_ids]
    ids += [("pad_token_id", spec.pad_id)] if spec.pad_id is not None else []
    outside = [f"{key} {i}" for key, i in ids if not 0 <= i < arch.vocab_size]
    if outside:
        raise CheckpointError(f"config.json: {', '.join(outside)} outside the vocabulary "
                              f"(the embedding has {arch.vocab_size} rows)")
    table = arch.max_positions * arch.head_dim * 4 * 2  # float32 cos + sin
    if table > MAX_ROPE_TABLE_BYTES:
        raise CheckpointError(f"config.json: a context of {arch.max_positions} positions needs {table / 2**30:.1f} GiB "
                              f"of rotary tables (limit {MAX_ROPE_TABLE_BYTES // 2**30} GiB); lower its context length")


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint: those `model.safetensors.index.json` names when present, else
    `model.safetensors` alone when present (a stray extra file never overrides it), else every *.safetensors."""
    if (path / INDEX_FILE).is_file():
        weight_map = read_json(path, INDEX_FILE).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{path / INDEX_FILE} is malformed: needs a \"weight_map\" of tensor name → file")
        files = sorted({confined(path, f, f"{INDEX_FILE} entry") for f in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{INDEX_FILE} names shard files that do not exist: {', '.join(absent)}")
        return files
    if (path / SINGLE_FILE).is_file():
        return [confined(path, SINGLE_FILE)]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        hint = f" (found {', '.join(pickles)}: unmask never loads pickles; convert them to safetensors)" if pickles else ""
        raise CheckpointError(f"{path} has no *.safetensors weights{hint}")
    return [confined(path, f.name) for f in files]


def _listing(label: str, names: list[str]) -> str:
    more = f" … and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    return f"{label} ({len(names)}): {', '.join(names[:MAX_NAMES])}{more}"


def read_tensors(files: list[Path], names: dict[str, str], model: DecoderLM, tied: bool,
                 ignored: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Read every mapped tensor, collecting all name, shape, dtype and duplicate problems before raising.
    Names starting with one of `ignored` (a part the architecture declares it does not run) are skipped."""
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    state, unexpected, misshaped, not_float, twice, origin = {}, [], [], [], [], {}
    for file in files:
        try:
            handle = safe_open(str(file), framework="pt")
        except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
            raise CheckpointError(f"{file.name} is not a readable safetensors file: {e}") from None
        with handle as f:
            for name in f.keys():
                if name in origin:
                    twice.append(f"{name} in {origin[name]} and {file.name}")
                    continue
                origin[name] = file.name
                if name not in names:
                    # tied checkpoints may carry a copy of the head
                    if not (tied and name == "lm_head.weight") and not name.startswith(ignored):
                        unexpected.append(name)
                    continue
                tensor_slice = f.get_slice(name)
                got, dtype = tuple(tensor_slice.get_shape()), tensor_slice.get_dtype()
                want = shapes[names[name]]
                if dtype not in FLOAT_DTYPES:
                    not_float.append(f"{name} ({dtype})")
                elif got != want:
                    misshaped.append(f"{name} {list(got)} (config implies {list(want)})")
                else:
                    state[names[name]] = f.get_tensor(name)
    missing = sorted(set(names) - set(origin))
    problems = [_listing(label, items) for label, items in
                (("missing", missing), ("unexpected", sorted(unexpected)), ("mis-shaped", misshaped),
                 ("not floating point", not_float), ("stored twice", twice)) if items]
    if problems:
        raise CheckpointError("checkpoint does not match its config: " + "; ".join(problems))
    return state


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors holding NaN or ±inf, with one host sync for all of them.

    A tensor's sum is NaN or inf whenever it holds one (and, rarely, when finite values overflow: those tensors
    are then checked element by element). The sum reads each weight once and allocates nothing, where
    `isfinite(t).all()` writes a bool per element: on one CPU thread, 267 M parameters take 60 ms (fp32) or
    45 ms (bf16) instead of 1.2 s / 0.95 s.
    """
    if not state:
        return []
    sums = torch.stack([t.sum() for t in state.values()])
    suspects = [name for name, ok in zip(state, torch.isfinite(sums).tolist()) if not ok]
    return [name for name in suspects if not bool(torch.isfinite(state[name]).all())]


def check_tokenizer(path: Path, arch: ArchConfig, spec: DiffusionSpec) -> None:
    """The checkpoint's tokenizer (when it has one) against the embedding and the special ids."""
    if not (path / "tokenizer.json").is_file():
        return
    from unmask.models.tokenizer import TextTokenizer, check_vocabulary

    check_vocabulary(TextTokenizer(path), arch.vocab_size, spec)


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               check_finite: bool = True, fuse: bool | None = None) -> tuple[DecoderLM, DiffusionSpec]:
    """Build the native model for a checkpoint directory and load its weights onto `device` in `dtype`.

    The whole checkpoint is checked in one pass before the model is used: config types and sizes, tensor
    names, shapes and dtypes, the tokenizer against the embedding and, with `check_finite` (the default: it
    costs about one read of the weights on their device), that no weight is NaN or ±inf in `dtype`.
    With `fuse`, q|k|v and gate|up become one matmul each (models/fused.py; the tensor names of `state_dict()`
    stay the checkpoint's). None (the default) fuses on CUDA only: on the CPU the fused model measured no faster
    (eager) and up to 1.3× slower (compiled) than the unfused one (docs/runner.md).
    """
    path = Path(path)
    cfg = read_config(path)
    arch, spec, names = parse_config(cfg)
    module = arch_module(cfg)
    check_tokenizer(path, arch, spec)
    with torch.device("meta"):
        model = getattr(module, "build", DecoderLM)(arch)
    state = read_tensors(weight_files(path), names, model, arch.tie_embeddings, getattr(module, "IGNORED_PREFIXES", ()))
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    if check_finite:
        bad = non_finite(state)
        if bad:
            ours = {v: k for k, v in names.items()}
            raise CheckpointError("checkpoint has non-finite weights (NaN or inf" + (
                f" in {dtype}" if dtype != torch.float32 else "") + "): " +
                _listing("tensors", [ours.get(n, n) for n in bad]))
    if not isinstance(model, DecoderLM):   # an architecture with its own module (DiffusionGemma)
        model.load_state_dict(state, strict=True, assign=True)
        model.build_buffers(device)
        return model.eval().requires_grad_(False), spec
    model.load_state_dict(state, strict=not arch.tie_embeddings, assign=True)
    if arch.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    model.rotary.build_tables(device)
    if fuse or (fuse is None and torch.device(device).type == "cuda"):
        fuse_projections(model)
    return model.eval().requires_grad_(False), spec


def generation_defaults(path: str | Path) -> tuple[dict, tuple[int, ...]]:
    """Decode settings and extra EOS ids from the checkpoint's generation_config.json, for architectures whose
    reference sampler reads it (DiffusionGemma); ({}, ()) otherwise."""
    path = Path(path)
    reader = getattr(arch_module(read_config(path)), "generation_defaults", None)
    if reader is None or not (path / "generation_config.json").is_file():
        return {}, ()
    try:
        return reader(read_json(path, "generation_config.json"))
    except ValueError as e:
        raise CheckpointError(f"generation_config.json: {e}") from None


def save_model(model: DecoderLM, names: dict[str, str], path: str | Path, config: dict) -> None:
    """Write `config.json` + `model.safetensors` under the checkpoint's own tensor names (the inverse of load)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    params = model.state_dict()   # a model fused at load gives its tensors under the unfused names here
    tensors = {theirs: params[ours].detach().contiguous().cpu() for theirs, ours in names.items()}
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
