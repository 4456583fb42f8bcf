"""A model argument (local directory | bundled model name | hub id) → a local checkpoint directory."""
from __future__ import annotations

import os
import re
from pathlib import Path

from unmask.errors import CheckpointError, ConfigError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def bundled_models() -> list[str]:
    """Names of the models that ship inside the package."""
    return sorted(p.name for p in ASSETS.iterdir() if (p / "config.json").is_file()) if ASSETS.is_dir() else []


def resolve_model(model: str | os.PathLike) -> Path:
    """Find the checkpoint directory for `model`, downloading a hub id when `huggingface_hub` is installed."""
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        raise ConfigError(f"model must be a checkpoint directory, a bundled model name "
                          f"({', '.join(bundled_models()) or 'none installed'}) or a hub id, "
                          f"got {type(model).__name__} {str(model)[:40]}")
    if not model.strip():
        raise ConfigError("model is empty: give a checkpoint directory, a bundled model name or a hub id")
    if "\x00" in model:
        raise ConfigError(f"model {model[:80]!r} contains a NUL character")
    path = Path(model).expanduser()
    try:
        if path.is_dir():
            return path
        exists = path.exists()
    except OSError as e:  # e.g. a name too long for the file system
        raise CheckpointError(f"model {model[:80]!r} cannot be used as a path: {e.strerror}") from None
    if str(model) in bundled_models():
        return ASSETS / str(model)
    if isinstance(model, str) and HUB_ID.match(model) and not exists:
        return _download(model)
    raise CheckpointError(f"model {model[:200]!r} is not a directory, a bundled model "
                          f"({', '.join(bundled_models()) or 'none installed'}), or a hub id like org/name")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(f"{repo_id!r} looks like a hub id; install the hub extra to download it: "
                          "pip install 'unmask[hub]'") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"]))
    except Exception as e:  # network, auth and not-found errors all end here, with the hub's own message
        raise CheckpointError(f"could not download {repo_id!r} from the hub: {type(e).__name__}: {e}") from None
