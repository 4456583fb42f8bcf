"""Serving load benchmark: `unmask serve` under concurrent streaming clients vs offline `LLM.generate`.

For each preset, in one run on one machine:
  offline      LLM.generate on the same prompts in batches of 32 (no HTTP, no scheduler);
  continuous   `unmask serve` (a subprocess) at concurrency 1, 8, 32, 64: closed-loop clients that each send
               the next request as soon as their last one finished, streaming (SSE);
  static       the same server with `--batching static`, the old one-batch-at-a-time pattern;
  open loop    continuous vs static when requests arrive as a Poisson process (at --load x the capacity
               measured above) and ask for different max_tokens: a request that arrives while a static batch
               runs waits for the whole batch.
Reported: tokens/s (completion tokens over wall time), time to first streamed token (TTFT) and request
latency p50/p95, server start-up time, and every served output checked against offline for the same prompt.

    python bench/serve_load.py --model tiny-arith --out docs/serve-load.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Result:
    ttft: float | None
    latency: float
    tokens: int
    text: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def engine_counters(url: str) -> dict[str, float]:
    """unmask_engine_steps_total and unmask_engine_step_seconds_total from /metrics."""
    out = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        for name in ("unmask_engine_steps_total", "unmask_engine_step_seconds_total"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[-1])
    return out


def engine_share(before: dict, after: dict, wall: float) -> dict:
    steps = after["unmask_engine_steps_total"] - before["unmask_engine_steps_total"]
    busy = after["unmask_engine_step_seconds_total"] - before["unmask_engine_step_seconds_total"]
    return {"engine_steps": int(steps), "engine_busy": round(busy / wall, 3)}


def arith_prompts(n: int) -> list[str]:
    from unmask.bench.tasks import get_task

    task = get_task("arith")
    examples = task.examples("test")
    return [task.prompt(examples[i % len(examples)]) for i in range(n)]


class ServerProcess:
    """`unmask serve` in a subprocess on a free port; `startup` is the seconds until /health answered."""

    def __init__(self, model: str, preset: str, max_running: int, batching: str, threads: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "unmask.cli", "serve", "--model", model, "--preset", preset,
                     "--port", str(self.port), "--max-running", str(max_running), "--batching", batching,
                     "--max-waiting", "4096"]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.env = env

    def __enter__(self) -> "ServerProcess":
        start = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unmask serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > 120:
                raise RuntimeError("unmask serve did not start in 120 s")
            time.sleep(0.05)
        self.startup = time.perf_counter() - start
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


async def one_request(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int | None) -> Result:
    body = {"model": model, "prompt": prompt, "stream": True, "stream_options": {"include_usage": True}}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    start = time.perf_counter()
    ttft, text, tokens = None, [], 0
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread()).decode()[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            for choice in chunk.get("choices", []):
                if choice.get("text"):
                    ttft = ttft if ttft is not None else time.perf_counter() - start
                    text.append(choice["text"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return Result(ttft, time.perf_counter() - start, tokens, "".join(text))


async def closed_loop(url: str, model: str, prompts: list[str], max_tokens: list[int | None],
                      concurrency: int) -> tuple[list[Result], float]:
    """`concurrency` clients; each sends the next unsent prompt when its last request finished."""
    results: list[Result | None] = [None] * len(prompts)
    order = iter(range(len(prompts)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def worker() -> None:
            for i in order:
                results[i] = await one_request(client, model, prompts[i], max_tokens[i])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return results, wall


async def open_loop(url: str, model: str, prompts: list[str], max_tokens: list[int | None],
                    rate: float, seed: int = 0) -> tuple[list[Result], float]:
    """Requests arrive as a Poisson process at `rate` per second, whatever the server's state; each latency
    counts from its own arrival (a request that waits for a running batch to end pays for the wait)."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for _ in prompts:
        arrivals.append(t)
        t += rng.expovariate(rate)
    limits = httpx.Limits(max_connections=len(prompts), max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        start = time.perf_counter()

        async def arrive(i: int) -> Result:
            await asyncio.sleep(max(0.0, start + arrivals[i] - time.perf_counter()))
            return await one_request(client, model, prompts[i], max_tokens[i])

        results = await asyncio.gather(*(arrive(i) for i in range(len(prompts))))
        wall = time.perf_counter() - start
    return list(results), wall


def summarize(name: str, results: list[Result], wall: float, **extra: object) -> dict:
    latencies = [r.latency for r in results]
    ttfts = [r.ttft for r in results if r.ttft is not None]
    tokens = sum(r.tokens for r in results)
    row = {"mode": name, **extra, "requests": len(results), "tokens": tokens, "wall_s": round(wall, 3),
           "tokens_per_s": round(tokens / wall, 1),
           "ttft_p50_ms": round(1000 * statistics.median(ttfts), 1) if ttfts else None,
           "latency_p50_ms": round(1000 * quantile(latencies, 0.5), 1),
           "latency_p95_ms": round(1000 * quantile(latencies, 0.95), 1)}
    return row


def offline(model: str, preset: str, prompts: list[str], batch: int) -> tuple[dict, list[str]]:
    """LLM.generate in batches of `batch`: the throughput the server is measured against."""
    import torch

    from unmask import LLM

    llm = LLM(model, device="cpu")
    config = llm.resolve_config(preset)
    llm.generate(prompts[:batch], config)                                    # warm-up
    texts, tokens, latencies = [], 0, []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            done = llm.generate(prompts[i:i + batch], config)
            texts += [c.text for c in done]
            tokens += sum(len(c.token_ids) for c in done)
            latencies += [time.perf_counter() - start] * len(done)   # every request waits for its batch
    wall = time.perf_counter() - start
    row = {"mode": "offline", "concurrency": batch, "requests": len(prompts), "tokens": tokens,
           "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1), "ttft_p50_ms": None,
           "latency_p50_ms": None, "latency_p95_ms": None}
    return row, texts


def serve_runs(args, preset: str, prompts: list[str], expected: list[str]) -> list[dict]:
    rows = []
    same_length = [None] * len(prompts)
    rng = random.Random(0)
    mixed = [rng.choice(args.mixed_tokens) for _ in prompts]
    rate = None
    for batching in ("continuous", "static"):
        with ServerProcess(args.model, preset, args.max_running, batching, args.threads) as server:
            levels = args.concurrency if batching == "continuous" else [c for c in args.concurrency if c >= 32]
            asyncio.run(closed_loop(server.url, args.model, prompts[:8], same_length[:8], 8))   # warm-up
            for c in levels:
                n = min(len(prompts), max(args.min_requests, args.requests_per_client * c))
                before = engine_counters(server.url)
                results, wall = asyncio.run(closed_loop(server.url, args.model, prompts[:n], same_length[:n], c))
                share = engine_share(before, engine_counters(server.url), wall)
                mismatched = sum(r.text != e for r, e in zip(results, expected[:n]))
                rows.append(summarize(batching, results, wall, concurrency=c, startup_s=round(server.startup, 2),
                                      mismatched=mismatched, **share))
                print(json.dumps({"preset": preset, **rows[-1]}), file=sys.stderr, flush=True)
                if batching == "continuous" and c == max(levels):
                    rate = args.load * len(results) / wall   # requests/s: a fraction of the measured capacity
            n = min(len(prompts), args.open_requests)
            before = engine_counters(server.url)
            results, wall = asyncio.run(open_loop(server.url, args.model, prompts[:n], mixed[:n], rate))
            share = engine_share(before, engine_counters(server.url), wall)
            rows.append(summarize(f"{batching}, Poisson arrivals, mixed max_tokens", results, wall,
                                  concurrency=f"{rate:.1f} req/s", **share))
            print(json.dumps({"preset": preset, **rows[-1]}), file=sys.stderr, flush=True)
    return rows


def markdown(records: list[dict]) -> str:
    lines = ["| preset | mode | concurrency | requests | tokens/s | TTFT p50 ms | latency p50 ms | latency p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        cells = [r["preset"], r["mode"], r["concurrency"], r["requests"], r["tokens_per_s"], r["ttft_p50_ms"],
                 r["latency_p50_ms"], r["latency_p95_ms"]]
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny-arith")
    p.add_argument("--presets", default="llada,fast-dllm")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--requests-per-client", type=int, default=8, help="requests per client at each concurrency")
    p.add_argument("--min-requests", type=int, default=32)
    p.add_argument("--prompts", type=int, default=256, help="distinct prompts (the offline run uses all)")
    p.add_argument("--mixed-tokens", default="16,32,48", help="max_tokens drawn per request in the mixed run")
    p.add_argument("--load", type=float, default=0.7, help="Poisson arrival rate as a fraction of the requests/s "
                   "measured at the highest concurrency")
    p.add_argument("--open-requests", type=int, default=256, help="requests in the Poisson-arrival run")
    p.add_argument("--batch", type=int, default=32, help="offline batch size")
    p.add_argument("--max-running", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the server process")
    p.add_argument("--out", default=None, help="write the records as JSON here (and a .md table beside it)")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.mixed_tokens = [int(t) for t in args.mixed_tokens.split(",")]

    prompts = arith_prompts(args.prompts)
    records = []
    for preset in args.presets.split(","):
        row, expected = offline(args.model, preset, prompts, args.batch)
        records.append({"preset": preset, **row})
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
        records += [{"preset": preset, **r} for r in serve_runs(args, preset, prompts, expected)]
    table = markdown(records)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"model": args.model, "cpu_count": os.cpu_count(), "records": records}, indent=1))
        out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
