"""The runner (engine/runner.py): sized up front, bucketed shapes, and each step one compiled graph.

Capture is checked with dynamo's "eager" backend (it traces and guards exactly as with inductor, but generates
no code, so these run in seconds); tests/engine/test_compile.py compares inductor's tokens (slow)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
sys.path.insert(0, str(Path(__file__).parent))
from cache_tiny import tiny  # noqa: E402
from test_engine_invariance import CACHE_KNOBS, COMMIT_KNOBS, OTHERS, run  # noqa: E402

from unmask.cache import CACHES  # noqa: E402
from unmask.config import DecodeConfig  # noqa: E402
from unmask.decoding import COMMIT  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402
from unmask.engine.runner import Buckets, Runner, query_lengths  # noqa: E402
from unmask.engine.step import forward_and_decide  # noqa: E402
from unmask.errors import ConfigError, RequestError  # noqa: E402

BASE = dict(gen_length=16, block_length=8, stop_at_eos=False)
STANDARD = [("none", "threshold"), ("prefix", "threshold"), ("dual", "linear")]   # the rest: the slow test below
# configurations whose decision dynamo cannot trace: per-row torch.Generator draws (the step then runs the
# compiled forward and an eager decision)
SAMPLING = {"remdm"}


@pytest.fixture(scope="module")
def net():
    return tiny("llada")


def standard(cache: str, commit: str) -> DecodeConfig:
    knobs = {"threshold": 0.3} if commit == "threshold" else {"steps": 16}
    return DecodeConfig(**BASE, cache=cache, commit=commit, **knobs)


def test_batch_buckets_and_the_rows_they_refuse():
    assert Buckets.up_to(16).batch == (1, 2, 4, 8, 16)
    assert Buckets.up_to(12).batch == (1, 2, 4, 8, 12)
    assert Buckets.up_to(12).batch_bucket(9) == 12 and Buckets.up_to(1).batch == (1,)
    with pytest.raises(ConfigError, match="13 rows .* at most 12"):
        Buckets.up_to(12).batch_bucket(13)


def test_query_lengths_per_cache_kind():
    assert query_lengths("none", 10, 16, 8, 0) == (26,)
    assert query_lengths("prefix", 10, 16, 8, 0) == (8, 16, 26)    # block 1, blocks 0-1, refresh
    assert query_lengths("dual", 10, 16, 8, 1) == (9, 26)          # one block + the position before it (Dream)
    assert query_lengths("d2", 10, 16, 8, 0) is None               # decided by the data


def test_runner_refuses_what_cannot_fit_up_front(net):
    model, spec = net
    with pytest.raises(ConfigError, match="max_running"):
        Runner(model, spec, max_running=10 ** 9, context_len=spec.context_len)
    with pytest.raises(ConfigError, match="context length"):
        Runner(model, spec, context_len=spec.context_len + 1)
    engine = Engine(model, spec, context_len=20)
    with pytest.raises(RequestError, match="runner's context length 20") as e:
        engine.add_request([5, 6, 7, 8, 9], DecodeConfig(**BASE))
    assert e.value.status == 413


@pytest.mark.parametrize("cache,commit", STANDARD)
def test_standard_steps_are_one_graph_with_the_eager_tokens(net, cache, commit):
    """fullgraph=True: a graph break (or a host sync, which dynamo can only take as a break) would raise and be
    recorded in `fallbacks`; none may be. The compiled steps give the eager tokens."""
    model, spec = net
    cfg = standard(cache, commit)
    engine = Engine(model, spec, compile=True, backend="eager")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*cannot be compiled")   # a fallback warns
        compiled = run(engine, [(p, cfg) for p in OTHERS])
    assert engine.runner.fallbacks == {}
    assert compiled == run(Engine(model, spec), [(p, cfg) for p in OTHERS])


def test_explain_finds_one_graph_and_no_break(net):
    """torch._dynamo.explain on a real step (a prefix refresh, then a reuse step): one graph each, no break."""
    model, spec = net
    explained = []

    class Explaining(Runner):
        def functions(self, parts):
            def core(*args):
                explained.append(torch._dynamo.explain(forward_and_decide)(*args))
                return forward_and_decide(*args)
            return self.model, core

    engine = Engine(model, spec)
    engine.runner = Explaining(model, spec)
    cfg = standard("prefix", "threshold")
    engine.add_request(OTHERS[0], cfg)
    with torch.inference_mode():
        engine.step()
        engine.step()
    assert len(explained) == 2
    for out in explained:
        assert (out.graph_count, out.graph_break_count, out.break_reasons) == (1, 0, [])


def test_a_step_dynamo_cannot_capture_falls_back_visibly(net):
    """Temperature sampling draws from per-row generators: the configuration falls back (compiled forward, eager
    decision), says so once, and still gives the eager tokens."""
    model, spec = net
    cfg = DecodeConfig(**BASE, steps=16, temperature=1.0, seed=3, cache="prefix")
    engine = Engine(model, spec, compile=True, backend="eager")
    with pytest.warns(UserWarning, match="cannot be compiled as one graph"):
        compiled = run(engine, [(p, cfg) for p in OTHERS])
    assert [key[-2] for key in engine.runner.fallbacks] == ["sampled"]
    assert compiled == run(Engine(model, spec), [(p, cfg) for p in OTHERS])


def test_a_group_wider_than_the_runner_is_refused(net):
    model, spec = net
    runner = Runner(model, spec, max_running=2, compile=True, backend="eager")
    engine = Engine(model, spec, max_running=2)
    engine.runner = runner
    runner.buckets = Buckets.up_to(1)   # as if sized for one row
    engine.add_request(OTHERS[0], standard("none", "threshold"))
    engine.add_request(OTHERS[1], standard("none", "threshold"))
    with pytest.raises(ConfigError, match="2 rows does not fit"):
        engine.step()


def registry_configs() -> list[tuple[str, DecodeConfig]]:
    """Every registered cache (with the LLaDA quota) and every registered commit rule (alone and with dual)."""
    out = [(f"cache={c}", DecodeConfig(**BASE, steps=16, cache=c, **CACHE_KNOBS.get(c, {})))
           for c in CACHES.names() if c != "block-causal"]
    for rule in COMMIT.names():
        out.append((f"commit={rule}", DecodeConfig(**BASE, commit=rule, **COMMIT_KNOBS.get(rule, {}))))
        if rule != "slowfast":
            out.append((f"commit={rule}+dual", DecodeConfig(**BASE, commit=rule, cache="dual",
                                                            **COMMIT_KNOBS.get(rule, {}))))
    return out


REGISTRY = registry_configs()


@pytest.mark.slow
@pytest.mark.parametrize("name,cfg", REGISTRY, ids=[n for n, _ in REGISTRY])
def test_every_cache_and_commit_rule_compiles_to_the_eager_tokens(net, name, cfg):
    """Iterates the registries, so a new rule or cache is covered without a change here. Only the rules that
    draw from per-row generators may fall back; block-causal is covered on its own model below."""
    model, spec = net
    engine = Engine(model, spec, compile=True, backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = run(engine, [(p, cfg) for p in OTHERS])
    assert compiled == run(Engine(model, spec), [(p, cfg) for p in OTHERS])
    assert {key[1] for key in engine.runner.fallbacks} <= {COMMIT.get(r).__name__ for r in SAMPLING}


@pytest.mark.slow
def test_block_causal_cache_compiles_to_the_eager_tokens():
    model, spec = tiny("llada", attention="block_causal:8")
    cfg = DecodeConfig(**BASE, commit="threshold", threshold=0.3, cache="block-causal")
    engine = Engine(model, spec, compile=True, backend="eager")
    assert run(engine, [(p, cfg) for p in OTHERS]) == run(Engine(model, spec), [(p, cfg) for p in OTHERS])
    assert engine.runner.fallbacks == {}
