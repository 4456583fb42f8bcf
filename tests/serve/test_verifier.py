"""A server started with a verifier model: the `unmask` field selects an AR-verified preset per request, and
/metrics counts the verifier's forwards beside the dLLM's."""
from __future__ import annotations

import httpx

from live_server import PROMPT, LiveServer, metrics
from tiny_models import write_tiny_model
from unmask import LLM
from unmask.serve.app import ServeConfig


def test_per_request_verify_preset_and_verifier_nfe_metric(tmp_path):
    llm = LLM("tiny-arith", device="cpu", verifier=write_tiny_model(tmp_path, "llada", seed=3, is_causal=True))
    body = {"model": "tiny-arith", "prompt": PROMPT, "max_tokens": 16,
            "unmask": {"preset": "specdiff", "overrides": {"verify_lookahead": 4}}}
    with LiveServer(llm, ServeConfig("tiny-arith", max_tokens=64)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        m = metrics(http, server.url)
    assert m["unmask_verifier_nfe_total"] >= 1 and m["unmask_nfe_total"] == m["unmask_verifier_nfe_total"]
    from unmask.engine.autoregressive import greedy            # greedy SpecDiff is the verifier's own text
    ids, _ = greedy(llm.verifier, [llm.tokenizer.encode(PROMPT)], 16)[0]
    assert r.json()["choices"][0]["text"] == llm.tokenizer.decode([t for t in ids if t not in llm.spec.eos_ids])


def test_a_verify_preset_without_a_verifier_is_a_400(tiny_arith):
    body = {"model": "tiny-arith", "prompt": PROMPT, "max_tokens": 16, "unmask": {"preset": "apd"}}
    with LiveServer(tiny_arith, ServeConfig("tiny-arith", max_tokens=64)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post("/v1/completions", json=body)
    assert r.status_code == 400 and "needs a verifier model" in r.text
