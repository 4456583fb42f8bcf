"""Property-based fuzzing of the OpenAI endpoints: whatever the body, the answer is never a 5xx.

Bodies mix every known field (valid values, wrong types, out-of-range numbers, NaN/Infinity literals, huge
ints, nested junk) with unknown fields, and raw byte strings that are not JSON at all. A 200 must be a
well-formed completion (or a stream that ends with [DONE]); anything else must be an OpenAI error body.
"""
from __future__ import annotations

import json

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from unmask.presets import PRESETS  # noqa: E402

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.text(max_size=12))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                    max_leaves=6)


def either(valid):
    """Mostly well-typed values (so requests get past validation and run), sometimes junk."""
    return st.one_of(valid, valid, valid, junk)


prompt = st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20), min_size=1, max_size=3),
                   st.lists(st.integers(-5, 200), min_size=1, max_size=8))
message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "developer", "robot"]),
                                 "content": st.text(max_size=30)})
overrides = st.dictionaries(st.sampled_from(["gen_length", "block_length", "steps", "threshold", "temperature",
                                             "cache", "commit", "remask", "alg", "top_k", "seed", "bogus"]),
                            st.one_of(st.integers(-4, 40), st.floats(allow_nan=True), st.text(max_size=8)),
                            max_size=3)
unmask_field = st.fixed_dictionaries({}, optional={"preset": either(st.sampled_from(sorted(PRESETS) + ["nope"])),
                                                   "overrides": either(overrides),
                                                   "stream_canvas": either(st.booleans())})
common = {"model": either(st.sampled_from(["tiny-arith", "other-model"])),
          "max_tokens": either(st.integers(-2, 24)), "max_completion_tokens": either(st.integers(0, 24)),
          "temperature": either(st.floats(-1, 3)), "top_p": either(st.floats(-0.5, 1.5)),
          "seed": either(st.integers(-1, 2 ** 64)), "stop": either(st.one_of(st.text(max_size=3),
                                                                              st.lists(st.text(max_size=3), max_size=5))),
          "stream": either(st.booleans()), "stream_options": either(st.fixed_dictionaries(
              {}, optional={"include_usage": st.booleans()})), "unmask": either(unmask_field),
          "n": either(st.integers(0, 3)), "logit_bias": junk, "user": junk, "surprise": junk}
junk_completion = st.fixed_dictionaries({"prompt": either(prompt)}, optional=common)
junk_chat = st.fixed_dictionaries({"messages": either(st.lists(message, min_size=0, max_size=3))}, optional=common)

# Well-formed bodies with random valid values, so the fuzzer also drives generation, streaming and every preset
text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)
valid_overrides = st.fixed_dictionaries({}, optional={
    "threshold": st.floats(0.05, 1.0), "cache": st.sampled_from(["none", "prefix", "dual", "delayed", "feature"]),
    "remask": st.sampled_from(["none", "wino", "edit", "low-confidence"]), "temperature": st.floats(0, 2),
    "commit": st.sampled_from(["threshold", "linear", "eb", "hierarchy", "klass"]), "alg": st.just("entropy"),
    "logits_fusion": st.sampled_from(["none", "credit"]), "cfg_scale": st.floats(0, 2)})
valid_common = {"max_tokens": st.sampled_from([1, 5, 16, 24, 48]), "temperature": st.floats(0, 2),
                "top_p": st.floats(0.05, 1.0), "seed": st.integers(0, 2 ** 63 - 1),
                "stop": st.lists(st.text(min_size=1, max_size=2), max_size=4), "stream": st.booleans(),
                "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
                "unmask": st.fixed_dictionaries({}, optional={"preset": st.sampled_from(sorted(PRESETS)),
                                                              "overrides": valid_overrides,
                                                              "stream_canvas": st.booleans()})}
valid_completion = st.fixed_dictionaries({"model": st.just("tiny-arith"), "prompt": st.one_of(
    text, st.lists(text, min_size=1, max_size=3), st.lists(st.integers(0, 80), min_size=1, max_size=8))},
    optional=valid_common)
valid_chat = st.fixed_dictionaries({"model": st.just("tiny-arith"), "messages": st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": text}),
    min_size=1, max_size=3)}, optional=valid_common)
completion_body = st.one_of(valid_completion, junk_completion)
chat_body = st.one_of(valid_chat, junk_chat)


def check(response: httpx.Response, streamed: bool) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        return
    if streamed:
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]
        assert '"error"' not in response.text
    else:
        assert response.json()["choices"]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)   # the same examples on every run: CI stays reproducible


@pytest.fixture(scope="module")
def http(live):
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client


@FUZZ
@given(body=completion_body)
def test_completions_never_5xx(http, body):
    r = http.post("/v1/completions", content=json.dumps(body))   # NaN / Infinity literals go through
    check(r, streamed=body.get("stream") is True)


@FUZZ
@given(body=chat_body)
def test_chat_completions_never_5xx(http, body):
    r = http.post("/v1/chat/completions", content=json.dumps(body))
    check(r, streamed=body.get("stream") is True)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)),
       path=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics",
                             "/v1/nothing"]),
       method=st.sampled_from(["POST", "GET", "PUT"]))
def test_raw_bodies_and_paths_never_5xx(http, raw, path, method):
    r = http.request(method, path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text[:300]


def test_fuzzed_server_is_left_with_no_running_requests(http, live):
    from live_server import metrics

    m = metrics(http, live.url)
    assert m["unmask_requests_running"] == 0 and m["unmask_requests_waiting"] == 0
