"""The HTTP app: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics.

Every request error is an OpenAI-shaped JSON body with a 4xx status; only an engine failure is a 5xx.
"""
from __future__ import annotations

import asyncio
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from unmask.config import DecodeConfig
from unmask.engine.llm import LLM
from unmask.errors import ConfigError, RequestError, UnmaskError
from unmask.serve import protocol as P
from unmask.serve.loop import EngineLoop
from unmask.serve.metrics import metrics_text
from unmask.serve.text import ChoiceText


@dataclass
class ServeConfig:
    model_name: str
    api_key: str | None = None
    max_running: int = 64
    max_waiting: int = 1024
    batching: str = "continuous"            # or "static": the old one-batch-at-a-time pattern
    max_prompt_tokens: int | None = None    # default: the model's context length
    max_tokens: int | None = None           # default: the model's context length
    max_body_bytes: int = 1 << 20
    drain_timeout: float = 30.0
    max_context: int | None = None          # prompt + generation per request, the K/V pool's length (default: the
                                            # model's context length)


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def with_max_tokens(cfg: DecodeConfig, n: int) -> DecodeConfig:
    """gen_length for a `max_tokens` of n: rounded up to whole blocks (steps per block kept); the server cuts the
    text at n tokens."""
    window = cfg.window_length
    if cfg.num_windows == 1:
        steps = None if cfg.steps is None else max(1, min(n, math.ceil(cfg.num_steps * n / cfg.gen_length)))
        block = None if cfg.block_length is None else n
        return cfg.replace(gen_length=n, block_length=block, steps=steps) if n != cfg.gen_length else cfg
    gen = math.ceil(n / window) * window
    steps = None if cfg.steps is None else cfg.steps_per_window * (gen // window)
    return cfg.replace(gen_length=gen, steps=steps) if gen != cfg.gen_length else cfg


class Server:
    def __init__(self, llm: LLM, base: DecodeConfig, settings: ServeConfig) -> None:
        self.llm, self.base, self.settings = llm, base, settings
        context = settings.max_context or llm.spec.context_len
        if settings.max_context is not None and context <= base.gen_length:
            raise ConfigError(f"--max-context {context} leaves no room for a prompt beside the default gen_length "
                              f"{base.gen_length}; raise it or lower --gen-length")
        self.max_prompt = settings.max_prompt_tokens or context
        self.max_tokens = settings.max_tokens or context
        self.engine = llm.make_engine(max_running=settings.max_running, max_waiting=settings.max_waiting,
                                      prompt_bucket=True, batching=settings.batching, context_len=settings.max_context)
        self.loop = EngineLoop(self.engine)

    # ---- request → (prompt ids, config) -----------------------------------------------------------
    def config_for(self, body: P.CommonRequest) -> tuple[DecodeConfig, int]:
        opts = body.unmask or P.UnmaskOptions()
        if "learned_filter" in opts.overrides:
            raise ApiError(400, "learned_filter names a file on the server and cannot be set per request; the "
                                "server uses the model's own Learn2PD filter or the one it was started with", "unmask")
        try:
            if opts.preset is not None:
                cfg = self.llm.preset_config(opts.preset, **opts.overrides)
            else:
                cfg = self.base.replace(**opts.overrides) if opts.overrides else self.base
            fields = {k: v for k, v in (("temperature", body.temperature), ("top_p", body.top_p),
                                        ("seed", body.seed)) if v is not None}
            cfg = cfg.replace(**fields) if fields else cfg
            limit = body.token_limit or cfg.gen_length
            if limit > self.max_tokens:
                raise ApiError(400, f"max_tokens {limit} is over this server's limit of {self.max_tokens}",
                               "max_tokens")
            if self.llm.spec.corruption == "uniform":   # canvases of a fixed length; steps are per canvas
                cfg = cfg.replace(gen_length=limit) if limit != cfg.gen_length else cfg
            else:
                cfg = with_max_tokens(cfg, limit)
            self.llm.check_config(cfg)
            return cfg, limit
        except ConfigError as e:
            raise ApiError(400, f"invalid decoding settings: {e}", "unmask") from None

    def prompt_ids(self, prompts: list, chat: bool) -> list[list[int]]:
        limit_chars = self.max_prompt * self.llm.max_token_chars
        for p in prompts:
            if isinstance(p, str) and len(p) > limit_chars:
                raise ApiError(413, f"prompt has {len(p)} characters; the limit is {self.max_prompt} tokens", "prompt")
        try:
            ids = self.llm.encode(prompts, chat=False) if not chat else \
                [self.llm.tokenizer.encode(p, add_special_tokens=False) for p in prompts]
            ids = [self.llm.engine.check_prompt(r) for r in ids]
        except RequestError as e:
            raise ApiError(e.status, str(e), "prompt") from None
        for r in ids:
            if len(r) > self.max_prompt:
                raise ApiError(413, f"prompt has {len(r)} tokens; this server's limit is {self.max_prompt}", "prompt")
        return ids

    def chat_prompt(self, body: P.ChatRequest) -> str:
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        total = sum(len(m["content"]) for m in messages)
        if total > self.max_prompt * self.llm.max_token_chars:
            raise ApiError(413, f"messages have {total} characters; the limit is {self.max_prompt} tokens", "messages")
        try:
            return self.llm.tokenizer.apply_chat_template(messages)
        except UnmaskError as e:
            raise ApiError(400, str(e), "messages") from None

    # ---- running --------------------------------------------------------------------------------
    async def handle(self, request: Request, body: P.CommonRequest, prompts: list, chat: bool) -> Response:
        if body.model != self.settings.model_name:
            raise ApiError(404, f"model {body.model!r} does not exist; this server serves "
                                f"{self.settings.model_name!r}", "model", "model_not_found")
        if not self.loop.accepting:
            raise ApiError(503, "the server is shutting down")
        cfg, limit = self.config_for(body)
        ids = self.prompt_ids(prompts, chat)
        canvas = bool(body.unmask and body.unmask.stream_canvas)
        queue: asyncio.Queue = asyncio.Queue()
        rids: list[str] = []
        try:
            for i, row in enumerate(ids):
                rids.append(self.loop.submit(row, cfg, queue, i, stream_canvas=canvas and body.stream))
        except RequestError as e:
            for rid in rids:
                self.loop.abort(rid)
            raise ApiError(e.status, str(e), "prompt") from None
        texts = [ChoiceText(self.llm.tokenizer.decode, body.stop, limit) for _ in ids]
        call = Call(self, request, body, chat, rids, ids, texts, queue)
        if body.stream:
            return StreamingResponse(call.stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return await call.whole()


class Call:
    """One HTTP request's sub-requests (one per prompt) and their texts."""

    def __init__(self, server: Server, request: Request, body: P.CommonRequest, chat: bool, rids: list[str],
                 ids: list[list[int]], texts: list[ChoiceText], queue: asyncio.Queue) -> None:
        self.server, self.request, self.body, self.chat = server, request, body, chat
        self.rids, self.ids, self.texts, self.queue = rids, ids, texts, queue
        self.pending = set(range(len(rids)))
        self.id = P.new_id("chatcmpl" if chat else "cmpl")
        self.error: str | None = None

    def take(self, index: int, out) -> tuple[str, str | None]:
        """Apply one StepOutput: (text delta, finish reason when this choice just finished)."""
        text = self.texts[index]
        if out.error:
            self.error = out.error
        delta = text.feed(out.new_token_ids) if out.new_token_ids else ""
        if out.finished:
            self.pending.discard(index)
            delta += text.finish(out.completion.finish_reason)
            return delta, text.reason
        if text.done:   # a stop string or max_tokens: free the slot now
            self.pending.discard(index)
            self.server.loop.abort(self.rids[index])
            return delta, text.reason
        return delta, None

    def usage(self) -> dict:
        return P.usage(sum(len(r) for r in self.ids), sum(len(t.ids) for t in self.texts))

    def abort_pending(self) -> None:
        for i in self.pending:
            self.server.loop.abort(self.rids[i])

    async def whole(self) -> Response:
        try:
            while self.pending:
                try:
                    index, out = await asyncio.wait_for(self.queue.get(), 0.5)
                except asyncio.TimeoutError:
                    if await self.request.is_disconnected():
                        return Response(status_code=499)
                    continue
                self.take(index, out)
        finally:
            self.abort_pending()
        if self.error:
            return error_response(500, f"generation failed: {self.error}", code="model_error")
        model = self.server.settings.model_name
        choices = [P.completion_choice(i, t.sent, t.reason, self.chat) for i, t in enumerate(self.texts)]
        return JSONResponse(P.envelope(self.id, model, self.chat, False, choices, usage=self.usage()))

    def sse(self, choices: list, **extra: Any) -> str:
        payload = P.envelope(self.id, self.server.settings.model_name, self.chat, True, choices, **extra)
        return f"data: {json.dumps(payload)}\n\n"

    async def stream(self):
        try:
            if self.chat:
                yield self.sse([P.chunk_choice(i, None, None, True, first=True) for i in range(len(self.rids))])
            while self.pending:
                index, out = await self.queue.get()
                delta, reason = self.take(index, out)
                if out.canvas is not None:
                    yield self.sse([], unmask={"index": index, "canvas": out.canvas,
                                               "mask_id": self.server.llm.spec.mask_id})
                if self.error:
                    yield f"data: {json.dumps(P.error_body(f'generation failed: {self.error}', 500))}\n\n"
                    break
                if delta or reason:
                    yield self.sse([P.chunk_choice(index, delta, reason, self.chat)])
            opts = self.body.stream_options
            if opts is not None and opts.include_usage and not self.error:
                yield self.sse([], usage=self.usage())
            yield "data: [DONE]\n\n"
        finally:   # also runs when the client disconnects and the response task is cancelled
            self.abort_pending()


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(P.error_body(message, status, param, code), status_code=status)


def validation_message(e: ValidationError) -> tuple[str, str | None]:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unknown field {where!r}", where
    if err.get("type") == "missing":
        return f"missing field {where!r}", where
    return f"invalid value for {where!r}: {err.get('msg')}", where


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ApiError(400, f"request body is not valid JSON: {e}") from None


class ApiKeyCheck:
    """Pure ASGI middleware: every path but /health needs 'Authorization: Bearer KEY' (streams pass through)."""

    def __init__(self, app, key: str) -> None:
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                response = error_response(401, "missing or wrong API key (send 'Authorization: Bearer <key>')",
                                          code="invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(llm: LLM, base: DecodeConfig, settings: ServeConfig) -> FastAPI:
    server = Server(llm, base, settings)

    async def lifespan(app: FastAPI):
        server.loop.start()
        yield
        await server.loop.drain(settings.drain_timeout)

    app = FastAPI(title="unmask", lifespan=lifespan)
    app.state.server = server

    if settings.api_key:
        app.add_middleware(ApiKeyCheck, key=settings.api_key)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return error_response(e.status, e.message, e.param, e.code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return error_response(e.status_code, str(e.detail))

    async def parse(request: Request, model: type) -> Any:
        data = await read_json(request, settings.max_body_bytes)
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as e:
            message, param = validation_message(e)
            raise ApiError(400, message, param) from None

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await parse(request, P.CompletionRequest)
        return await server.handle(request, body, body.prompts(), chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await parse(request, P.ChatRequest)
        return await server.handle(request, body, [server.chat_prompt(body)], chat=True)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model", "created": 0,
                                            "owned_by": "unmask"}]}

    @app.get("/health")
    async def health():
        if not server.loop.accepting:
            return error_response(503, "shutting down")
        return {"status": "ok", "running": server.engine.num_running, "waiting": server.engine.num_waiting}

    @app.get("/metrics")
    async def metrics():
        return Response(metrics_text(server.engine, server.loop), media_type="text/plain; version=0.0.4")

    return app
