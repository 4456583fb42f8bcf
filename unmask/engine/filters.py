"""Which Learn2PD filter a `commit="learned"` config uses, loaded once per engine.

`learned_filter` in the config: a filter file, a directory holding `learn2pd_filter.safetensors`, or the name
of a bundled model whose filter to take; None: the filter in the served model's own directory.
"""
from __future__ import annotations

from pathlib import Path

from unmask.config import DecodeConfig
from unmask.decoding.filter_head import FILTER_FILE, FilterHead, filter_file, load_filter
from unmask.errors import CheckpointError, ConfigError
from unmask.models.resolve import ASSETS, bundled_models


class FilterLibrary:
    def __init__(self, model_dir: str | Path | None) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.loaded: dict[Path, FilterHead] = {}

    def path_for(self, config: DecodeConfig) -> Path:
        name = config.learned_filter
        if name is None:
            if self.model_dir is None or not (self.model_dir / FILTER_FILE).is_file():
                where = (f"{self.model_dir} has no {FILTER_FILE}" if self.model_dir
                         else "this engine has no model directory")
                raise ConfigError(f"commit 'learned' needs a Learn2PD filter, and {where}; train one with "
                                  f"`unmask train-filter --model <model>` or set learned_filter=<path>")
            return self.model_dir / FILTER_FILE
        if name in bundled_models() and not Path(name).exists():
            return ASSETS / name / FILTER_FILE
        if not filter_file(name).is_file():
            raise ConfigError(f"learned_filter {name!r} is neither a {FILTER_FILE} file, a directory holding one, "
                              f"nor a bundled model ({', '.join(bundled_models())})")
        return filter_file(name)

    def get(self, config: DecodeConfig) -> FilterHead | None:
        """The filter for `config` (None unless commit='learned'); ConfigError / CheckpointError when there is none."""
        if config.commit != "learned":
            return None
        path = self.path_for(config).resolve()
        if path not in self.loaded:
            try:
                self.loaded[path] = load_filter(path)
            except CheckpointError as e:   # a request asking for it gets a config error (a 400 when served)
                raise ConfigError(f"commit 'learned': {e}") from None
        return self.loaded[path]
