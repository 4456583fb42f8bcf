"""Output paths of the commands (bench --out, train --out / --export): checked before any work, written atomically."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from unmask.errors import ConfigError


def check_output_dir(path: str | Path, flag: str) -> Path:
    """`path` is, or can be created as, a directory we can write into; ConfigError naming `flag` otherwise.

    Nothing is created: the nearest existing ancestor is probed with a temporary file (permission bits alone
    would pass for root, and miss read-only file systems).
    """
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty; give a directory")
    out = Path(path).expanduser()
    existing = out
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ConfigError(f"{flag} {out}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out else f"lies under {existing}, which is a file"
        raise ConfigError(f"{flag} {out} {where}, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".unmask-write-test-", dir=existing)
    except OSError as e:
        raise ConfigError(f"{flag} {out}: cannot write in {existing} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return out


def check_output_files(directory: Path, names: list[str], flag: str) -> None:
    """Files about to be written into `directory` must not exist as directories (a rename over one fails)."""
    blocked = [name for name in names if (directory / name).is_dir()]
    if blocked:
        raise ConfigError(f"{flag} {directory}: {', '.join(blocked)} exist as directories; cannot write them")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open(path, "w")
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return path
