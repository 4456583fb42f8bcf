"""A real `unmask serve` app on tiny-arith, run by uvicorn on a free port in a background thread."""
from __future__ import annotations

import socket
import threading
import time

import uvicorn

from unmask import LLM
from unmask.serve.app import create_app, ServeConfig

PROMPT = "Ann has 23 pens. She buys 45 more. How many pens does she have now?\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, llm: LLM, settings: ServeConfig, preset: str = "fast-dllm") -> None:
        self.llm, self.settings = llm, settings
        self.base = llm.default_config() if preset is None else llm.resolve_config(preset)
        self.app = create_app(llm, self.base, settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # keep-alive well above a step on a loaded machine: with uvicorn's 5 s, a client can reuse a connection the
        # server is closing at that moment (httpx.ReadError), a race of the harness, not of the server
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                timeout_graceful_shutdown=5, timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    @property
    def engine(self):
        return self.app.state.server.engine


def metrics(client, url: str) -> dict[str, float]:
    """The unmask_* samples of /metrics as {name{labels}: value}."""
    out = {}
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("unmask_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
