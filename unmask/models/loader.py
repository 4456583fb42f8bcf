"""Load a checkpoint directory (config.json + safetensors, sharded or not) into a native model, strictly.

The model is built on the meta device and every parameter is assigned from the file by name through the
architecture's name map; missing, unexpected and mis-shaped tensors are all reported in one CheckpointError.
Pickled weights (`*.bin`, `*.pt`) are never loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from unmask.errors import CheckpointError
from unmask.models.registry import arch_module
from unmask.models.spec import DiffusionSpec
from unmask.models.transformer import ArchConfig, DecoderLM

MAX_NAMES = 20  # names listed per category in an error


def read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{path} has no config.json")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from None


def parse_config(cfg: dict) -> tuple[ArchConfig, DiffusionSpec, dict[str, str]]:
    """config.json → (architecture config, diffusion spec, checkpoint name → parameter name)."""
    module = arch_module(cfg)
    try:
        arch, spec = module.from_config(cfg)
        arch.check()
    except KeyError as e:
        raise CheckpointError(f"config.json lacks required key {e.args[0]!r} for {module.ARCHITECTURES[0]}") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"config.json: {e}") from None
    return arch, spec, module.name_map(arch)


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint, following `model.safetensors.index.json` when present."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is malformed: {e}") from None
        files = sorted({path / f for f in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{index.name} names shard files that do not exist: {', '.join(absent)}")
        return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        hint = f" (found {', '.join(pickles)}: unmask never loads pickles; convert them to safetensors)" if pickles else ""
        raise CheckpointError(f"{path} has no *.safetensors weights{hint}")
    return files


def _listing(label: str, names: list[str]) -> str:
    more = f" … and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    return f"{label} ({len(names)}): {', '.join(names[:MAX_NAMES])}{more}"


def read_tensors(files: list[Path], names: dict[str, str], model: DecoderLM, tied: bool) -> dict[str, torch.Tensor]:
    """Read every mapped tensor, collecting all name and shape problems before raising."""
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    state, unexpected, misshaped, seen = {}, [], [], set()
    for file in files:
        try:
            handle = safe_open(str(file), framework="pt")
        except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
            raise CheckpointError(f"{file.name} is not a readable safetensors file: {e}") from None
        with handle as f:
            for name in f.keys():
                if name not in names:
                    if not (tied and name == "lm_head.weight"):  # tied checkpoints may carry a copy of the head
                        unexpected.append(name)
                    continue
                seen.add(name)
                got = tuple(f.get_slice(name).get_shape())
                want = shapes[names[name]]
                if got != want:
                    misshaped.append(f"{name} {list(got)} (config implies {list(want)})")
                    continue
                state[names[name]] = f.get_tensor(name)
    missing = sorted(set(names) - seen)
    problems = [_listing(label, items) for label, items in
                (("missing", missing), ("unexpected", sorted(unexpected)), ("mis-shaped", misshaped)) if items]
    if problems:
        raise CheckpointError("checkpoint does not match its config: " + "; ".join(problems))
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[DecoderLM, DiffusionSpec]:
    """Build the native model for a checkpoint directory and load its weights onto `device` in `dtype`."""
    path = Path(path)
    arch, spec, names = parse_config(read_config(path))
    with torch.device("meta"):
        model = DecoderLM(arch)
    state = read_tensors(weight_files(path), names, model, arch.tie_embeddings)
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=not arch.tie_embeddings, assign=True)
    if arch.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    model.rotary.build_tables(device)
    return model.eval().requires_grad_(False), spec


def save_model(model: DecoderLM, names: dict[str, str], path: str | Path, config: dict) -> None:
    """Write `config.json` + `model.safetensors` under the checkpoint's own tensor names (the inverse of load)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    params = dict(model.named_parameters())
    tensors = {theirs: params[ours].detach().contiguous().cpu() for theirs, ours in names.items()}
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
