"""`unmask serve`: an OpenAI-compatible HTTP server over one model."""
from __future__ import annotations

import argparse
import sys

from unmask.errors import ConfigError

EXTRA_HINT = 'unmask serve needs the serve extra: pip install -e ".[serve]"  (FastAPI, uvicorn, prometheus_client)'


def register(sub) -> None:
    from unmask.cli import add_decode_flags, add_runner_flags
    from unmask.engine.api import BATCHING

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)")
    p.add_argument("--model", required=True, help="checkpoint directory, bundled model name or hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 and /metrics")
    p.add_argument("--max-running", type=int, default=64, help="requests decoded at once (rows), default 64")
    p.add_argument("--batching", choices=BATCHING, default="continuous",
                   help="continuous: requests join between steps (default); static: the old one-batch-at-a-time "
                        "pattern, admitting only when nothing runs (for comparison)")
    p.add_argument("--max-waiting", type=int, default=1024, help="queued requests before 503, default 1024")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the model's context length")
    p.add_argument("--max-tokens", type=int, default=None, help="largest max_tokens a request may ask for "
                   "(default: the model's context length)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body, default 1 MiB")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="on SIGTERM, seconds to let running requests "
                   "finish before aborting them")
    p.add_argument("--served-model-name", default=None, help="the name clients pass as `model` (default: --model)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    add_runner_flags(p)
    add_decode_flags(p)


def check_limits(args: argparse.Namespace) -> None:
    for name in ("max_running", "max_waiting", "max_prompt_tokens", "max_tokens", "max_body_bytes", "max_context"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.drain_timeout < 0:
        raise ConfigError(f"--drain-timeout must be ≥ 0, got {args.drain_timeout}")


def graceful_server(uvicorn, config):
    """A uvicorn server that treats SIGTERM/SIGINT as "drain and exit 0".

    uvicorn ≥ 0.29 re-raises a caught signal after its graceful shutdown, so the process would die by
    SIGTERM (exit -15) even though every request was finished; process managers read that as a crash.
    """

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and not self.force_exit:
                captured.clear()

    return GracefulServer(config)


def run(args: argparse.Namespace) -> int:
    check_limits(args)
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as e:
        raise ConfigError(f"{EXTRA_HINT} (missing module {e.name!r})") from None
    from unmask.cli import decode_config
    from unmask.engine.llm import LLM
    from unmask.serve.app import ServeConfig, create_app

    llm = LLM(args.model, device=args.device, dtype=args.dtype, compile=args.compile, verifier=args.verifier,
              context_len=args.max_context)
    base = decode_config(args, llm)
    settings = ServeConfig(model_name=args.served_model_name or args.model, api_key=args.api_key,
                           max_running=args.max_running, max_waiting=args.max_waiting, batching=args.batching,
                           max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens,
                           max_body_bytes=args.max_body_bytes, drain_timeout=args.drain_timeout,
                           max_context=args.max_context)
    app = create_app(llm, base, settings)
    print(f"unmask serve: {settings.model_name} on http://{args.host}:{args.port}/v1 "
          f"({base.commit} commit, {base.cache} cache, gen_length {base.gen_length})", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=max(1, int(args.drain_timeout)))
    try:
        graceful_server(uvicorn, config).run()
    except OSError as e:
        raise ConfigError(f"cannot bind {args.host}:{args.port}: {e.strerror or e}") from None
    return 0
