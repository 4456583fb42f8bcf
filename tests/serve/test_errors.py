"""Every bad request gets an OpenAI-shaped JSON error with a 4xx status, never a 500."""
from __future__ import annotations

import json

import httpx
import pytest

from live_server import PROMPT, LiveServer
from unmask.serve.app import ServeConfig

GOOD = {"model": "tiny-arith", "prompt": PROMPT, "max_tokens": 16}
CASES = [
    ("unknown field", {**GOOD, "frobnicate": 1}, 400, "frobnicate"),
    ("missing prompt", {"model": "tiny-arith"}, 400, "prompt"),
    ("missing model", {"prompt": PROMPT}, 400, "model"),
    ("unknown model", {**GOOD, "model": "nope"}, 404, "nope"),
    ("temperature nan-like", {**GOOD, "temperature": "hot"}, 400, "temperature"),
    ("negative temperature", {**GOOD, "temperature": -1}, 400, "temperature"),
    ("top_p over 1", {**GOOD, "top_p": 1.5}, 400, "top_p"),
    ("seed too big", {**GOOD, "seed": 2 ** 64}, 400, "seed"),
    ("max_tokens 0", {**GOOD, "max_tokens": 0}, 400, "max_tokens"),
    ("max_tokens over limit", {**GOOD, "max_tokens": 10_000}, 400, "max_tokens"),
    ("n=2", {**GOOD, "n": 2}, 400, "n"),
    ("logprobs", {**GOOD, "logprobs": 3}, 400, "logprobs"),
    ("five stops", {**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("prompt over the limit", {**GOOD, "prompt": "1+1=" * 40}, 413, "prompt"),
    ("huge prompt", {**GOOD, "prompt": "x" * 200_000}, 413, "prompt"),
    ("token id out of vocab", {**GOOD, "prompt": [5, 999]}, 400, "999"),
    ("mask id in prompt", {**GOOD, "prompt": [5, 2, 6]}, 400, "mask"),
    ("empty prompt list", {**GOOD, "prompt": []}, 400, "prompt"),
    ("unknown preset", {**GOOD, "unmask": {"preset": "warp-speed"}}, 400, "warp-speed"),
    ("unknown override", {**GOOD, "unmask": {"overrides": {"speed": 9}}}, 400, "speed"),
    ("invalid override", {**GOOD, "unmask": {"overrides": {"threshold": "high"}}}, 400, "threshold"),
    ("impossible override", {**GOOD, "unmask": {"overrides": {"cache": "dual", "block_length": 48}}}, 400, "dual"),
    ("stream not bool", {**GOOD, "stream": "yes"}, 400, "stream"),
    ("filter path per request", {**GOOD, "unmask": {"overrides": {"commit": "learned",
                                                                  "learned_filter": "/etc/passwd"}}}, 400,
     "learned_filter"),
]


@pytest.fixture(scope="module")
def http(live):
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def check_error(r: httpx.Response, status: int, needle: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert needle.lower() in err["message"].lower(), err["message"]


@pytest.mark.parametrize("name,body,status,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_completion_requests(http, name, body, status, needle):
    check_error(http.post("/v1/completions", json=body), status, needle)


def test_bad_chat_requests(http):
    check_error(http.post("/v1/chat/completions", json={"model": "tiny-arith", "messages": []}), 400, "messages")
    check_error(http.post("/v1/chat/completions", json={"model": "tiny-arith",
                                                        "messages": [{"role": "robot", "content": "x"}]}), 400, "role")


def test_body_not_json_or_not_an_object(http):
    check_error(http.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"}),
                400, "not valid JSON")
    check_error(http.post("/v1/completions", content=b"\xff\xfe", headers={"content-type": "application/json"}),
                400, "not valid JSON")
    check_error(http.post("/v1/completions", json=[1, 2]), 400, "JSON object")


def test_body_too_large(http):
    check_error(http.post("/v1/completions", content=json.dumps({**GOOD, "user": "x" * (2 << 20)})), 413, "limit")


def test_unknown_route_and_method_are_4xx(http):
    assert http.get("/v1/nothing").status_code == 404
    assert http.get("/v1/completions").status_code == 405


def test_api_key(tiny_arith):
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", api_key="s3cret", max_tokens=64)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        check_error(http.post("/v1/completions", json=GOOD), 401, "API key")
        check_error(http.post("/v1/completions", json=GOOD, headers={"Authorization": "Bearer wrong"}), 401, "API key")
        assert http.get("/metrics").status_code == 401
        assert http.get("/health").status_code == 200
        ok = http.post("/v1/completions", json=GOOD, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["text"]


def test_full_queue_is_a_503(tiny_arith):
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_waiting=0, max_tokens=64)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        check_error(http.post("/v1/completions", json=GOOD), 503, "queue is full")
        assert server.engine.num_running == 0 and server.engine.num_waiting == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(http, literal):
    body = json.dumps(GOOD)[:-1] + f', "temperature": {literal}}}'
    check_error(http.post("/v1/completions", content=body, headers={"content-type": "application/json"}),
                400, "temperature")


def test_a_request_over_max_context_is_413_naming_the_limit(tiny_arith):
    """--max-context sizes the runner (its K/V pool): a prompt + max_tokens that cannot fit is refused up front."""
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_tokens=64, max_context=80)) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        assert server.engine.runner.context_len == 80 and server.engine.runner.pool.context == 80
        assert client.post("/v1/completions", json={**GOOD, "prompt": "1+1=", "max_tokens": 8}).status_code == 200
        check_error(client.post("/v1/completions", json={**GOOD, "max_tokens": 64}), 413,
                    "exceeds the runner's context length 80 (--max-context)")
