"""EngineLoop: runs `Engine.step()` as a task on the server's event loop and hands each StepOutput to its request.

The engine steps on the event loop itself, between bursts of HTTP work, not on a thread of its own. The
engine needs the GIL between every torch op, and a second Python thread serving HTTP stalls it: measured on
tiny-arith at concurrency 32 (bench/serve_load.py), a step took ~1.5x its offline time on a thread and ~1.0x
inline. After each step the task yields for `YIELD_SECONDS`, long enough for the loop to read new requests,
write the step's chunks and notice disconnects. While a step runs, HTTP waits (at most one step).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import torch

from unmask.config import DecodeConfig
from unmask.engine.api import Completion, StepOutput

log = logging.getLogger("unmask.serve")

YIELD_SECONDS = 0.001


class EngineLoop:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.routes: dict[str, tuple[asyncio.Queue, int]] = {}
        self.stopping = False
        self.accepting = True
        self.task: asyncio.Task | None = None
        self.wake: asyncio.Event | None = None

    def start(self) -> None:
        """Start stepping on the running event loop (the app's lifespan calls this)."""
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run(), name="unmask-engine")

    # ---- requests ---------------------------------------------------------------------------------
    def submit(self, prompt_ids: list[int], config: DecodeConfig, queue: asyncio.Queue, index: int = 0,
               stream_canvas: bool = False) -> str:
        """Queue one request whose outputs go to `queue` as (index, StepOutput). Raises RequestError."""
        rid = self.engine.add_request(prompt_ids, config, stream_canvas=stream_canvas)
        self.routes[rid] = (queue, index)
        self.notify()
        return rid

    def abort(self, rid: str) -> None:
        if rid in self.routes:
            self.engine.abort(rid)
            self.notify()

    def notify(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def running(self) -> int:
        return len(self.routes)

    # ---- the engine task --------------------------------------------------------------------------
    async def run(self) -> None:
        while not self.stopping:
            if not self.engine.has_unfinished():
                self.wake.clear()
                await self.wake.wait()
                continue
            try:
                with torch.inference_mode():
                    outputs = self.engine.step()
            except Exception as e:   # an engine bug: fail what runs rather than hang every client
                log.exception("engine step failed")
                outputs = self.fail_all(f"internal engine error: {type(e).__name__}: {e}")
            self.deliver(outputs)
            await asyncio.sleep(YIELD_SECONDS)

    def deliver(self, outputs: list[StepOutput]) -> None:
        for out in outputs:
            route = self.routes.pop(out.request_id, None) if out.finished else self.routes.get(out.request_id)
            if route is not None:
                queue, index = route
                queue.put_nowait((index, out))

    def fail_all(self, message: str) -> list[StepOutput]:
        rids = list(self.routes)
        for rid in rids:
            self.engine.abort(rid)
        try:
            self.engine.step()   # applies the aborts, frees the slots
        except Exception:
            log.exception("engine could not free its rows after a failure")
            self.engine.groups.clear()
            self.engine.waiting.clear()
        return [StepOutput(rid, finished=True, error=message,
                           completion=Completion("", [], 0, "error", 0.0, error=message)) for rid in rids]

    async def drain(self, timeout: float) -> None:
        """Stop accepting; let what runs finish for up to `timeout` seconds, then abort the rest; stop."""
        self.accepting = False
        deadline = asyncio.get_running_loop().time() + timeout
        while self.running() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for rid in list(self.routes):
            self.abort(rid)
        deadline = asyncio.get_running_loop().time() + 5
        while self.running() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self.stopping = True
        self.notify()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
