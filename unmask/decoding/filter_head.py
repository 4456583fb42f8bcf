"""The Learn2PD filter head (arXiv 2509.25188): a tiny MLP over `filter_features.FEATURES`, and its files.

It ships beside a model as FILTER_FILE (safetensors) with FILTER_CONFIG, a small JSON of its shape, features,
training record and validated threshold; `load_filter` refuses a file trained on other features.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from unmask.decoding.filter_features import FEATURES, TOKEN_BUCKETS
from unmask.errors import CheckpointError

FILTER_FILE = "learn2pd_filter.safetensors"
FILTER_CONFIG = "learn2pd_filter.json"
TOKEN_EMBED = 4


class FilterHead(nn.Module):
    """features (…, F) → logit (…) that the position's current argmax is final: the numeric features and a
    4-dim embedding of the token bucket (the last feature) through two hidden layers."""

    def __init__(self, features: tuple[str, ...] = FEATURES, hidden: int = 32) -> None:
        super().__init__()
        self.features, self.hidden = check_features(features), hidden
        self.columns = [FEATURES.index(name) for name in self.features]
        self.recommended_threshold: float | None = None   # the threshold its training validated, when known
        self.embed = nn.Embedding(TOKEN_BUCKETS, TOKEN_EMBED)
        self.net = nn.Sequential(nn.Linear(len(self.features) - 1 + TOKEN_EMBED, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def inputs(self, features: Tensor, dtype: torch.dtype) -> Tensor:
        """All FEATURES (…, len(FEATURES)) → the head's input: its numeric columns and the bucket's embedding."""
        bucket = features[..., -1].long().clamp(0, TOKEN_BUCKETS - 1)
        numeric = features[..., self.columns[:-1]]
        return torch.cat([numeric.to(dtype), self.embed.weight.to(dtype)[bucket]], -1)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(self.inputs(features, self.embed.weight.dtype)).squeeze(-1)

    @torch.no_grad()
    def probability(self, features: Tensor) -> Tensor:
        """Sigmoid of the logit, computed in float64 (a copy of the weights; the module is left as it is)."""
        x = self.inputs(features, torch.float64)
        for layer in self.net:
            x = nn.functional.linear(x, layer.weight.double(), layer.bias.double()) if isinstance(layer, nn.Linear) \
                else layer(x)
        return x.squeeze(-1).sigmoid()

    def save(self, directory: str | Path, meta: dict | None = None) -> Path:
        """Write FILTER_FILE (weights) and FILTER_CONFIG (shape, features, `meta`) into `directory`."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().float().contiguous() for k, v in self.state_dict().items()}, directory / FILTER_FILE)
        config = {"method": "learn2pd", "features": list(self.features), "hidden": self.hidden, **(meta or {})}
        (directory / FILTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory / FILTER_FILE


def check_features(names) -> tuple[str, ...]:
    """`names` as a tuple when it is a subset of FEATURES without repeats ending in token_bucket; ValueError."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"features must be a list of names, got {names!r}")
    unknown = [n for n in names if n not in FEATURES]
    if unknown or len(set(names)) != len(names) or not names or names[-1] != "token_bucket":
        raise ValueError(f"features {list(names)} are not distinct names of {list(FEATURES)} ending in token_bucket"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return tuple(names)


def filter_file(path: str | Path) -> Path:
    """The weights file of a filter given as the file itself or a directory holding FILTER_FILE."""
    path = Path(path)
    return path / FILTER_FILE if path.is_dir() else path


def load_filter(path: str | Path) -> FilterHead:
    """A FilterHead from `path` (file or directory). CheckpointError when it is missing or malformed."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = filter_file(path)
    if not weights_path.is_file():
        raise CheckpointError(f"no Learn2PD filter at {weights_path}; train one with `unmask train-filter`")
    config_path = weights_path.with_name(FILTER_CONFIG)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        weights = load_file(str(weights_path))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        raise CheckpointError(f"the Learn2PD filter at {weights_path} cannot be read: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must be a JSON object, got {type(config).__name__}")
    try:
        features = check_features(config.get("features", FEATURES))
    except ValueError as e:
        raise CheckpointError(f"{config_path}: {e}; retrain it with `unmask train-filter`") from None
    hidden = config.get("hidden", weights.get("net.0.weight", torch.empty(32, 0)).shape[0])
    if not isinstance(hidden, int) or hidden < 1:
        raise CheckpointError(f"{config_path}: hidden must be a positive int, got {hidden!r}")
    head = FilterHead(features, int(hidden))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if found != expected:
        raise CheckpointError(f"the Learn2PD filter at {weights_path} does not match its config: expected tensors "
                              f"{expected}, found {found}")
    head.load_state_dict(weights)
    validation = config.get("validation")
    recommended = validation.get("recommended_threshold") if isinstance(validation, dict) else None
    usable = isinstance(recommended, (int, float)) and not isinstance(recommended, bool) and 0 < recommended <= 1
    head.recommended_threshold = float(recommended) if usable else None
    return head.eval()
