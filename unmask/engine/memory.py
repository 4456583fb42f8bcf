"""Memory a request needs, estimated before it runs, against what its device has free.

A coarse upper estimate of one row's peak during a forward: activations of one layer, attention
probabilities (materialised when a mask is passed), K/V of every layer (what a KV cache keeps) and the
generation region's logits and scores in float32. It exists to refuse requests that cannot fit (a
5,000,000-token canvas) with a message, instead of hanging or being killed for memory.
"""
from __future__ import annotations

from pathlib import Path

import torch

GIB = 1 << 30


def row_bytes(arch, length: int, gen_length: int, dtype_bytes: int) -> int:
    """Peak bytes one row of `length` canvas tokens (`gen_length` of them generated) needs in a forward."""
    activations = length * (6 * arch.d_model + 3 * arch.ffn_hidden) * dtype_bytes
    attention = arch.n_heads * length * length * 4
    kv = 2 * arch.n_layers * length * arch.n_kv_heads * arch.head_dim * dtype_bytes
    logits = 3 * gen_length * arch.vocab_size * 4
    return activations + attention + kv + logits


def available_bytes(device: torch.device) -> int | None:
    """Free memory of `device` (CUDA: free device memory; CPU: MemAvailable on Linux), None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def describe(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size / 10:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
