"""The import rules of DESIGN.md §7.2, checked by parsing every module's imports."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "unmask"
FORBIDDEN = {
    "models": ("decoding", "cache", "engine", "serve", "bench", "train", "config", "presets"),
    "decoding": ("models", "cache", "engine", "serve", "bench", "train", "config", "presets"),
    "cache": ("engine", "serve", "bench", "train", "config", "presets"),
    "engine": ("serve", "bench", "train"),
    "serve": ("models", "decoding", "cache", "bench", "train", "engine.engine", "engine.group", "engine.step",
              "engine.build", "engine.runner"),
    "bench": ("serve", "models", "decoding", "cache", "train", "engine.step", "engine.group", "engine.build",
              "engine.runner"),
    "train": ("serve", "engine.runner"),
    "eval": ("serve", "models", "decoding", "cache", "train", "engine.step", "engine.group", "engine.build",
             "engine.runner", "engine.engine"),
}
CACHE_MAY_USE = ("models.cache_view", "models.spec", "models.block_mask", "decoding.state")


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m[len("unmask."):] for m in found if m.startswith("unmask.")]


def violations(package: str) -> list[str]:
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for module in imports(path):
            if package == "cache" and module.split(".")[0] in ("models", "decoding"):
                if not module.startswith(CACHE_MAY_USE):
                    bad.append(f"{path.relative_to(ROOT)} imports unmask.{module}")
                continue
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports unmask.{module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package):
    if not (ROOT / package).is_dir():
        pytest.skip(f"unmask/{package} does not exist yet")
    assert violations(package) == []
