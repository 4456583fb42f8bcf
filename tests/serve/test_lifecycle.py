"""Slots are freed: after a client disconnects mid-stream, after a load of 1,000 requests, and on SIGTERM."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from live_server import PROMPT, LiveServer, free_port, metrics
from unmask.serve.app import ServeConfig, with_max_tokens

LONG = {"model": "tiny-arith", "prompt": PROMPT, "max_tokens": 48, "stream": True,
        "unmask": {"preset": "llada", "overrides": {"stop_at_eos": False}}}


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_disconnect_mid_stream_aborts_and_frees_the_slot(tiny_arith):
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_tokens=64)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        # hold the engine inside its steps a little, so the stream is surely mid-way when we leave
        step = server.engine.step
        server.engine.step = lambda: (time.sleep(0.02), step())[1]
        with http.stream("POST", "/v1/completions", json=LONG) as r:
            assert r.status_code == 200
            next(r.iter_lines())                  # the first chunk arrived: the request is running
        assert wait_for(lambda: metrics(http, server.url).get('unmask_requests_finished_total{reason="abort"}') == 1)
        m = metrics(http, server.url)
        assert m["unmask_requests_running"] == 0 and m["unmask_requests_in_flight"] == 0


async def load(url: str, prompts: list[str], concurrency: int) -> list:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one(prompt: str):
            async with sem:
                r = await client.post("/v1/completions", json={"model": "tiny-arith", "prompt": prompt,
                                                               "max_tokens": 16})
                return r.status_code, r.json()
        return await asyncio.gather(*(one(p) for p in prompts))


def test_load_1000_requests_at_concurrency_64_match_offline(tiny_arith):
    from unmask.bench.tasks.arith import ArithTask

    task = ArithTask()
    prompts = [task.prompt(ex) for ex in task.examples("test", 1000)]
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_running=64, max_tokens=64)) as server:
        results = asyncio.run(load(server.url, prompts, 64))
        with httpx.Client(base_url=server.url) as http:
            m = metrics(http, server.url)
        expected = tiny_arith.generate(prompts, with_max_tokens(server.base, 16))
    assert [status for status, _ in results] == [200] * len(prompts)
    assert m["unmask_requests_running"] == 0 and m["unmask_requests_waiting"] == 0
    assert m["unmask_requests_in_flight"] == 0 and m["unmask_groups"] == 0
    assert m['unmask_requests_finished_total{reason="eos"}'] + m.get('unmask_requests_finished_total{reason="length"}',
                                                                      0) == len(prompts)
    assert [body["choices"][0]["text"] for _, body in results] == [c.text for c in expected]


def test_cli_serve_starts_fast_and_sigterm_drains_and_exits_0():
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "unmask.cli", "serve", "--model", "tiny-arith", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        assert wait_for(up, 30), proc.stderr.read() if proc.poll() is not None else "no /health"
        started = time.monotonic() - start
        with httpx.Client(base_url=url, timeout=30) as http, http.stream("POST", "/v1/completions", json=LONG) as r:
            lines = r.iter_lines()
            next(lines)
            proc.send_signal(signal.SIGTERM)
            rest = "".join(lines)               # the running request is finished, not cut off
        assert rest.rstrip().endswith("[DONE]")
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
        assert started < 10, f"serve took {started:.1f} s to start"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("argv,needle", [(["--port", "0"], "--port"), (["--max-running", "0"], "--max-running"),
                                         (["--preset", "nope"], "nope"), (["--max-context", "0"], "--max-context"),
                                         (["--max-context", "1000"], "--max-context"),
                                         (["--max-context", "16"], "--max-context 16 leaves no room"),
                                         (["--max-context", "160", "--max-running", "100000000"], "--max-running")])
def test_cli_serve_bad_flags_exit_2(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "unmask.cli", "serve", "--model", "tiny-arith", *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
