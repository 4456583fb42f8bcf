"""Run untrusted Python (a model's completion plus its tests) in a separate process, never in ours.

`run_python(source, timeout)` writes the program into a fresh temporary directory and runs it with the
current interpreter in isolated mode (`-I`: no user site, no PYTHON* variables, no current directory on the
path) with an empty environment, in its own session, with limits on address space, CPU seconds, file size
and open files. Network: where unprivileged network namespaces work (`unshare -rn`, probed once), the
process gets a namespace with no interfaces; in any case a preamble replaces `socket.socket`,
`socket.create_connection` and `socket.getaddrinfo` with functions that raise. On timeout the whole
process group is killed. The result says whether the program exited 0, and why not.

This is a guard against accidents (an infinite loop, a runaway allocation, a stray HTTP call), not a
security boundary against code written to escape: run model output from sources you do not trust in a
container or VM.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_TIMEOUT_S = 10.0
MEMORY_BYTES = 2 * 1024**3
OUTPUT_CHARS = 2000
NO_NETWORK = '''\
import socket as _socket
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the unmask sandbox")
_socket.socket = _no_network
_socket.create_connection = _no_network
_socket.getaddrinfo = _no_network
del _socket, _no_network
'''


@dataclass(frozen=True)
class RunResult:
    passed: bool
    reason: str  # "passed", "failed", "timeout", or "error: …"
    output: str = ""  # the end of stderr, for diagnosis


@lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """("unshare", "-rn") where an unprivileged empty network namespace can be made here, else ()."""
    tool = shutil.which("unshare")
    if tool is None or not sys.platform.startswith("linux"):
        return ()
    try:
        ok = subprocess.run([tool, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (tool, "-rn") if ok else ()


def limit_resources(timeout: float) -> None:  # runs in the child between fork and exec
    import resource

    cpu = int(timeout) + 1
    for limit, value in ((resource.RLIMIT_AS, MEMORY_BYTES), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_FSIZE, 16 * 1024**2), (resource.RLIMIT_NOFILE, 64)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def run_python(source: str, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
    """Run `source` as a Python program in a sandboxed subprocess (module docstring)."""
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    with tempfile.TemporaryDirectory(prefix="unmask-sandbox-") as work:
        program = os.path.join(work, "program.py")
        with open(program, "w", encoding="utf-8") as f:
            f.write(NO_NETWORK + source)
        command = [*network_namespace_prefix(), sys.executable, "-I", "-B", program]
        posix = os.name == "posix"
        try:
            child = subprocess.Popen(command, cwd=work, env={"PATH": "/usr/bin:/bin", "HOME": work},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=posix,
                                     preexec_fn=(lambda: limit_resources(timeout)) if posix else None)
        except OSError as e:
            return RunResult(False, f"error: cannot start the sandbox ({e})")
        try:
            _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(child)
            child.communicate()
            return RunResult(False, "timeout")
        tail = err.decode("utf-8", "replace")[-OUTPUT_CHARS:]
        return RunResult(child.returncode == 0, "passed" if child.returncode == 0 else "failed", tail)


def kill_group(child: subprocess.Popen) -> None:
    """Kill the child's whole process group (what the program forked too), or the child alone elsewhere."""
    try:
        if os.name == "posix":
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
    except (ProcessLookupError, PermissionError):
        pass
