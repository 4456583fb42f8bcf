"""A request's tokens never depend on its neighbours or on when it joined: for every cache and commit rule,
the same tokens alone, in a batch with different prompt lengths, and joining at step k of another batch."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import tiny  # noqa: E402

from unmask.cache import CACHES  # noqa: E402
from unmask.config import DecodeConfig  # noqa: E402
from unmask.decoding import COMMIT  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402

LATE = [30, 31, 32, 33]
OTHERS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40]]
BASE = dict(gen_length=16, block_length=8, stop_at_eos=False)
CACHE_KNOBS = {"vicinity": {"vicinity_size": 2, "vicinity_warmup_steps": 2}, "delayed": {"cache_reloading_step": 3},
               "d2": {"d2_current_k": 4}, "feature": {"prompt_interval": 5, "response_interval": 3},
               "elastic": {"elastic_window": 4, "gamma": 0.9}}
COMMIT_KNOBS = {"linear": {"steps": 16}, "eb": {"alg": "entropy", "eb_gamma": 0.5},
                "hierarchy": {"threshold": 0.7, "low_threshold": 0.2}, "dimple": {"steps": 16, "threshold": 0.5},
                "dus": {}, "cosine": {"steps": 8},
                "klass": {"steps": 16, "threshold": 0.1, "kl_threshold": 5.0, "kl_history": 1},
                "remdm": {"seed": 5, "temperature": 1.0}, "dream": {"steps": 8, "alg": "entropy"}, "threshold": {"threshold": 0.3},
                "factor": {}, "slowfast": {"threshold": 0.3, "sf_span_threshold": 0.1, "sf_explore_steps": 2},
                "entropy-threshold": {"alg": "entropy", "threshold": 1.0},
                "learned": {"learned_filter": "tiny-arith", "filter_threshold": 0.5}}


BLOCK_CAUSAL_ONLY = ("block-causal",)   # caches that serve only block-causal models (test below)


def configs() -> list[tuple[str, DecodeConfig]]:
    out = []
    for cache in CACHES.names():
        if cache in BLOCK_CAUSAL_ONLY:
            continue
        out.append((f"cache={cache}", DecodeConfig(**BASE, steps=16, cache=cache, **CACHE_KNOBS.get(cache, {}))))
    for rule in COMMIT.names():
        out.append((f"commit={rule}", DecodeConfig(**BASE, commit=rule, **COMMIT_KNOBS.get(rule, {}))))
        if rule != "slowfast":   # slowfast refuses caches (tested in test_slowfast.py)
            out.append((f"commit={rule}+dual", DecodeConfig(**BASE, commit=rule, cache="dual",
                                                            **COMMIT_KNOBS.get(rule, {}))))
    out.append(("sampled", DecodeConfig(**BASE, steps=16, temperature=1.0, seed=5, cache="prefix")))
    out.append(("remask=low-confidence", DecodeConfig(**BASE, steps=4, remask="low-confidence", remask_budget=2,
                                                      remask_threshold=1.0)))
    out.append(("remask=wino", DecodeConfig(**BASE, commit="threshold", threshold=0.3, remask="wino")))
    out.append(("cfg", DecodeConfig(**BASE, steps=16, cfg_scale=1.5)))
    out.append(("eotp+prefix", DecodeConfig(**BASE, steps=16, eotp=True, eotp_threshold=0.05, cache="prefix")))
    out.append(("credit+dual", DecodeConfig(**BASE, commit="threshold", threshold=0.3, logits_fusion="credit",
                                            cache="dual")))
    out.append(("remask=edit+dual", DecodeConfig(**BASE, steps=8, remask="edit", edit_threshold=0.05, cache="dual")))
    return out


CONFIGS = configs()


def run(engine: Engine, requests: list[tuple[list[int], DecodeConfig]], late=None, join_at: int = 0):
    """Decode `requests`; `late` (prompt, config) is added after `join_at` steps. Returns {id: (tokens, nfe)}."""
    ids = [engine.add_request(p, c) for p, c in requests]
    done, steps = {}, 0
    with torch.inference_mode():
        while engine.has_unfinished() or (late is not None and steps <= join_at):
            if late is not None and steps == join_at:
                ids.append(engine.add_request(*late))
            done.update((o.request_id, (o.completion.token_ids, o.completion.nfe)) for o in engine.step() if o.finished)
            steps += 1
    return [done[i] for i in ids]


@pytest.fixture(scope="module", params=["llada", "dream"])
def model(request):
    return tiny(request.param)


@pytest.mark.parametrize("name,cfg", CONFIGS, ids=[n for n, _ in CONFIGS])
def test_alone_batched_and_joining_give_the_same_tokens(model, name, cfg):
    net, spec = model
    alone = run(Engine(net, spec), [(LATE, cfg)])[0]
    batched = run(Engine(net, spec), [(p, cfg) for p in OTHERS[:2]] + [(LATE, cfg)] + [(OTHERS[2], cfg)])
    assert batched[2] == alone
    for k in (1, 5):   # joins a running group at its step k
        joined = run(Engine(net, spec), [(p, cfg) for p in OTHERS], late=(LATE, cfg), join_at=k)
        assert joined[-1] == alone, f"joined at step {k}"
        assert joined[:3] == batched[:2] + [batched[3]], "the running rows are unaffected by the join"


BLOCK_CAUSAL_CONFIGS = [("none", DecodeConfig(**BASE, steps=16)),
                        ("block-causal", DecodeConfig(**BASE, steps=16, cache="block-causal")),
                        ("threshold+block-causal", DecodeConfig(**BASE, commit="threshold", threshold=0.3,
                                                                cache="block-causal"))]


@pytest.mark.parametrize("arch", ["llada", "dream"])
@pytest.mark.parametrize("name,cfg", BLOCK_CAUSAL_CONFIGS, ids=[n for n, _ in BLOCK_CAUSAL_CONFIGS])
def test_block_causal_model_alone_batched_and_joining_give_the_same_tokens(arch, name, cfg):
    """On a block-causal model each row's blocks sit at its own positions (prompt lengths 4, 8, 3, 11 with
    blocks of 8), whichever rows share its steps."""
    net, spec = tiny(arch, attention="block_causal:8")
    alone = run(Engine(net, spec), [(LATE, cfg)])[0]
    batched = run(Engine(net, spec), [(p, cfg) for p in OTHERS[:2]] + [(LATE, cfg)] + [(OTHERS[2], cfg)])
    assert batched[2] == alone
    joined = run(Engine(net, spec), [(p, cfg) for p in OTHERS], late=(LATE, cfg), join_at=3)
    assert joined[-1] == alone and joined[:3] == batched[:2] + [batched[3]]


def test_groups_share_a_step_and_slots_are_freed(model):
    """Different configs run as separate groups in the same step; finished rows leave at once."""
    net, spec = model
    engine = Engine(net, spec)
    a = DecodeConfig(**BASE, steps=16)
    b = DecodeConfig(**BASE, commit="threshold", threshold=0.3, cache="prefix")
    engine.add_request(OTHERS[0], a)
    engine.add_request(OTHERS[1], b)
    engine.add_request(OTHERS[2], a)
    engine.step()
    assert sorted(len(g) for g in engine.groups) == [1, 2]
    while engine.has_unfinished():
        engine.step()
    assert engine.num_running == 0 and engine.groups == []


def test_abort_frees_the_slot_and_reports_abort(model):
    net, spec = model
    engine = Engine(net, spec)
    cfg = DecodeConfig(**BASE, steps=16)
    keep, drop = engine.add_request(OTHERS[0], cfg), engine.add_request(OTHERS[1], cfg)
    engine.step()
    engine.abort(drop)
    outputs = {o.request_id: o for o in engine.step()}
    assert outputs[drop].finished and outputs[drop].completion.finish_reason == "abort"
    assert engine.num_running == 1 and engine.stats.aborted == 1 and engine.stats.by_reason == {"abort": 1}
    alone = run(Engine(net, spec), [(OTHERS[0], cfg)])[0]
    done = {}
    while engine.has_unfinished():
        done.update((o.request_id, o.completion.token_ids) for o in engine.step() if o.finished)
    assert done[keep] == alone[0]


def test_stream_sends_each_final_token_once_left_to_right(model):
    net, spec = model
    engine = Engine(net, spec)
    cfg = DecodeConfig(gen_length=16, block_length=8, steps=16)
    engine.add_request(OTHERS[0], cfg)
    streamed, completion = [], None
    while engine.has_unfinished():
        for o in engine.step():
            streamed += o.new_token_ids
            completion = o.completion or completion
    assert streamed == completion.token_ids


def test_max_running_bounds_the_rows_and_queue_limits(model):
    net, spec = model
    engine = Engine(net, spec, max_running=2, max_waiting=2)
    cfg = DecodeConfig(**BASE, steps=16)
    for p in OTHERS[:2]:
        engine.add_request(p, cfg)
    engine.step()
    engine.add_request(LATE, cfg)
    engine.step()
    assert engine.num_running == 2 and engine.num_waiting == 1
    engine.add_request(LATE, cfg)
    from unmask.errors import RequestError
    with pytest.raises(RequestError, match="queue is full") as e:
        engine.add_request(LATE, cfg)
    assert e.value.status == 503


def test_static_batching_is_the_old_one_batch_at_a_time_pattern(model):
    """batching="static": a request that arrives while a batch runs waits for the whole batch; the batch's
    outputs come out together when it ends; the tokens are the same as continuous batching gives."""
    net, spec = model
    cfg = DecodeConfig(**BASE, steps=16)
    engine = Engine(net, spec, batching="static")
    first = [engine.add_request(p, cfg) for p in OTHERS[:2]]
    emitted: list[tuple[int, str]] = []
    tokens: dict[str, list[int]] = {}
    steps = 0
    with torch.inference_mode():
        while engine.has_unfinished():
            if steps == 1:
                late = engine.add_request(LATE, cfg)
            outputs = engine.step()
            if steps >= 1 and any(g for g in engine.groups if any(r.request_id in first for r in g.rows)):
                assert engine.num_waiting == 1, "the late request waits while the first batch runs"
            emitted += [(steps, o.request_id) for o in outputs if o.finished]
            tokens.update((o.request_id, o.completion.token_ids) for o in outputs if o.finished)
            steps += 1
    when = dict((rid, step) for step, rid in emitted)
    assert when[first[0]] == when[first[1]] < when[late]
    assert tokens[late] == run(Engine(net, spec), [(LATE, cfg)])[0][0]
    assert [tokens[r] for r in first] == [t for t, _ in run(Engine(net, spec), [(p, cfg) for p in OTHERS[:2]])]
    with pytest.raises(Exception, match="batching"):
        Engine(net, spec, batching="sometimes")


def test_a_request_that_cannot_fit_in_memory_is_refused_before_it_runs(model, monkeypatch):
    """gen_length 5,000,000 on a model that declares a 10^7 context: a 413 naming the size, not a hang."""
    import dataclasses

    import unmask.engine.engine as engine_module
    from unmask.errors import RequestError

    net, spec = model
    engine = Engine(net, dataclasses.replace(spec, context_len=10 ** 7))
    with pytest.raises(RequestError, match="needs about .* GiB .*gen_length 5000000") as e:
        engine.add_request(OTHERS[0], DecodeConfig(gen_length=5_000_000, steps=1, block_length=5_000_000))
    assert e.value.status == 413 and engine.num_waiting == 0
    monkeypatch.setattr(engine_module, "available_bytes", lambda device: 1 << 10)   # a 1 KiB device
    with pytest.raises(RequestError, match="KiB of memory .* 1.0 KiB available"):
        Engine(net, spec).add_request(OTHERS[0], DecodeConfig(**BASE, steps=16))
    monkeypatch.setattr(engine_module, "available_bytes", lambda device: None)     # unknown: no check
    Engine(net, spec).add_request(OTHERS[0], DecodeConfig(**BASE, steps=16))


def test_abort_of_an_admitted_request_not_yet_joined(model):
    net, spec = model
    engine = Engine(net, spec)
    cfg = DecodeConfig(**BASE, steps=16)
    keep = engine.add_request(OTHERS[0], cfg)
    engine.step()
    late = engine.add_request(OTHERS[1], cfg)
    engine.waiting.extend(engine._inbox)            # admitted into the running group: arriving at its next step
    engine._inbox.clear()
    engine.admit()
    assert [r.request_id for g in engine.groups for r in g.arriving] == [late]
    engine.abort(late)
    outputs = {o.request_id: o for o in engine.step()}
    assert outputs[late].finished and outputs[late].completion.finish_reason == "abort"
    assert late not in engine.slots and engine.num_running == 1
    done = {}
    while engine.has_unfinished():
        done.update((o.request_id, o.completion.token_ids) for o in engine.step() if o.finished)
    assert set(done) == {keep}
