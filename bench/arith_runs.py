"""Shared by the arith bench scripts (block_diffusion.py, sub_blocks.py, distill.py): decode unseen arith problems
with one config, print the table, and write the JSON record stamped with the commit."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from unmask import LLM, DecodeConfig


def run_config(llm: LLM, task, examples, cfg: DecodeConfig, batch: int) -> tuple[dict, list[list[int]]]:
    """(accuracy, mean NFE, positions × layers per generated token, seconds; the tokens of every example)."""
    t0, correct, nfe, computed, tokens, ids = time.perf_counter(), 0.0, 0, 0, 0, []
    for i in range(0, len(examples), batch):
        chunk = examples[i:i + batch]
        for ex, done in zip(chunk, llm.generate([task.prompt(e) for e in chunk], cfg)):
            correct += task.score(ex, done.text)
            nfe += done.nfe
            computed += done.computed
            tokens += max(1, len(done.token_ids))
            ids.append(done.token_ids)
    n = len(examples)
    return {"accuracy": correct / n, "mean_nfe": nfe / n, "positions_x_layers_per_token": computed / tokens,
            "seconds": time.perf_counter() - t0}, ids


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print `rows` as a text table; each column is (row key, header, format spec such as '<14' or '>9.3f'),
    the header taking the spec's alignment and width."""
    print("".join(f"{header:{spec.split('.')[0].rstrip('df')}}" for _, header, spec in columns))
    for row in rows:
        cells = (str(row[key]) if isinstance(row[key], bool) else row[key] for key, _, _ in columns)
        print("".join(f"{cell:{spec}}" for cell, (_, _, spec) in zip(cells, columns)))


def write_record(rows: list[dict], n: int, threads: int, out: str | None) -> None:
    """Print the JSON record (last stdout line) and, with `out`, write it there too."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {"n": n, "threads": threads, "torch": torch.__version__, "sha": sha,
              "hardware": platform.processor() or platform.machine(), "rows": rows}
    if out:
        Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
