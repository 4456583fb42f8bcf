"""EngineLoop: runs `Engine.step()` on a background thread and hands each StepOutput to its HTTP request.

The asyncio side submits requests and reads their outputs from an asyncio.Queue; the engine thread steps
while anything runs and sleeps otherwise. add_request / abort are thread-safe in the Engine; outputs cross
back with `loop.call_soon_threadsafe`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import Any

import torch

from unmask.config import DecodeConfig
from unmask.engine.api import StepOutput

log = logging.getLogger("unmask.serve")


class EngineLoop:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.routes: dict[str, tuple[asyncio.Queue, int, asyncio.AbstractEventLoop]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.accepting = True
        self.thread = threading.Thread(target=self.run, name="unmask-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # ---- asyncio side -----------------------------------------------------------------------------
    def submit(self, prompt_ids: list[int], config: DecodeConfig, queue: asyncio.Queue, index: int = 0,
               stream_canvas: bool = False) -> str:
        """Queue one request whose outputs go to `queue` as (index, StepOutput). Raises RequestError."""
        rid = f"cmpl-{uuid.uuid4().hex}"
        with self.lock:   # route first, so the engine thread never sees a request it cannot deliver
            self.routes[rid] = (queue, index, asyncio.get_running_loop())
        try:
            self.engine.add_request(prompt_ids, config, request_id=rid, stream_canvas=stream_canvas)
        except BaseException:
            with self.lock:
                self.routes.pop(rid, None)
            raise
        self.wake.set()
        return rid

    def abort(self, rid: str) -> None:
        with self.lock:
            live = rid in self.routes
        if live:
            self.engine.abort(rid)
            self.wake.set()

    # ---- engine thread ----------------------------------------------------------------------------
    def run(self) -> None:
        torch.set_grad_enabled(False)
        while not self.stopping:
            if not self.engine.has_unfinished():
                self.wake.wait(0.05)
                self.wake.clear()
                continue
            try:
                with torch.inference_mode():
                    outputs = self.engine.step()
            except Exception as e:   # an engine bug: fail what runs rather than hang every client
                log.exception("engine step failed")
                outputs = self.fail_all(f"internal engine error: {type(e).__name__}: {e}")
            self.deliver(outputs)

    def deliver(self, outputs: list[StepOutput]) -> None:
        for out in outputs:
            with self.lock:
                route = self.routes.pop(out.request_id, None) if out.finished else self.routes.get(out.request_id)
            if route is None:
                continue
            queue, index, loop = route
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (index, out))
            except RuntimeError:   # the client's event loop is gone
                pass

    def fail_all(self, message: str) -> list[StepOutput]:
        from unmask.engine.api import Completion

        with self.lock:
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

    def running(self) -> int:
        with self.lock:
            return len(self.routes)

    def drain(self, timeout: float) -> None:
        """Stop accepting; let what runs finish for up to `timeout` seconds, then abort the rest; stop."""
        self.accepting = False
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            rids = list(self.routes)
        for rid in rids:
            self.engine.abort(rid)
        deadline = time.monotonic() + 5
        while self.running() and time.monotonic() < deadline:
            self.wake.set()
            time.sleep(0.02)
        self.stopping = True
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
