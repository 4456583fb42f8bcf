"""OpenAI-compatible HTTP serving (`unmask serve`). Talks to the engine only through `engine.api` and `LLM`.

Needs the `serve` extra (FastAPI, uvicorn, prometheus_client): `pip install -e ".[serve]"`.
"""
