"""Remask rules: their contract on synthetic step views, and on tiny models through the engine: caches that
accept remasking are exact with it, early stop and streaming keep their guarantees, decoding always ends."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import tiny  # noqa: E402

from unmask.cache import CACHES  # noqa: E402
from unmask.config import DecodeConfig  # noqa: E402
from unmask.decoding import REMASK, DecodeState  # noqa: E402
from unmask.decoding.remask import StepView  # noqa: E402
from unmask.engine.build import construct  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402
from unmask.errors import ConfigError  # noqa: E402

B, G, BLOCK = 4, 16, 8
RULES = [n for n in REMASK.names() if n != "none"]
KNOBS = {"low-confidence": {"remask_threshold": 0.8, "remask_budget": 2}, "wino": {"remask_threshold": 0.9},
         "edit": {"edit_threshold": 0.5}}


def synthetic(seed: int = 0) -> tuple[StepView, torch.Tensor, DecodeState]:
    g = torch.Generator().manual_seed(seed)
    state = DecodeState.start(B, G, mask_id=99, eos_ids=(1,), device="cpu")
    state.is_masked = torch.rand(B, G, generator=g) < 0.5
    state.tokens = torch.where(state.is_masked, 99, torch.randint(2, 50, (B, G), generator=g))
    state.finished = torch.tensor([False, False, False, True])
    window = (torch.arange(G) // BLOCK)[None, :] == torch.tensor([0, 1, 0, 1])[:, None]
    commit = state.is_masked & window & (torch.rand(B, G, generator=g) < 0.5)
    proposed = torch.where(torch.rand(B, G, generator=g) < 0.5, state.tokens, torch.randint(2, 50, (B, G), generator=g))
    view = StepView(proposed=proposed, scores=torch.rand(B, G, generator=g), predicted=torch.ones(B, G, dtype=torch.bool),
                    window=window, proposed_prob=torch.rand(B, G, generator=g),
                    current_prob=torch.rand(B, G, generator=g))
    return view, commit, state


@pytest.mark.parametrize("name", REMASK.names())
@pytest.mark.parametrize("seed", range(5))
def test_contract_on_synthetic_views(name, seed):
    view, commit, state = synthetic(seed)
    rule = construct(REMASK.get(name), DecodeConfig(remask=name, **KNOBS.get(name, {})), block_length=BLOCK)
    changes = rule.select(view, commit, state)
    touched = changes.reopen | changes.edit
    earlier = view.window & ~state.is_masked & ~commit & ~state.finished[:, None]
    assert not (touched & ~earlier).any(), "only earlier commits of the current window of running rows change"
    assert (changes.reopen.sum(-1) <= (commit.sum(-1) - 1).clamp(min=0)).all(), "one net commit per step"
    assert not (changes.edit & (view.proposed == state.tokens)).any(), "an edit changes the token"
    if name == "low-confidence":
        assert (changes.reopen.sum(-1) <= 2).all()
        assert not (changes.reopen & (view.current_prob >= 0.8)).any()


def test_reopen_takes_the_least_supported_tokens():
    view, commit, state = synthetic(1)
    rule = construct(REMASK.get("wino"), DecodeConfig(remask="wino", remask_threshold=1.0), block_length=BLOCK)
    changes = rule.select(view, commit, state)
    for b in range(B):
        chosen, eligible = changes.reopen[b], view.window[b] & ~state.is_masked[b] & ~commit[b] & ~state.finished[b]
        if chosen.any() and (eligible & ~chosen).any():
            assert view.current_prob[b][chosen].max() <= view.current_prob[b][eligible & ~chosen].min()


# ---- through the engine --------------------------------------------------------------------------------
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40]]
BASE = dict(gen_length=16, block_length=8, commit="threshold", threshold=0.3)


def decode(model, cfg: DecodeConfig, prompts=PROMPTS, stream: bool = False):
    net, spec = model
    engine = Engine(net, spec)
    ids = [engine.add_request(p, cfg) for p in prompts]
    done, streamed = {}, {i: [] for i in ids}
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                streamed[out.request_id] += out.new_token_ids
                if out.finished:
                    assert out.error is None, out.error
                    done[out.request_id] = out.completion
    return [done[i] for i in ids], [streamed[i] for i in ids]


@pytest.fixture(scope="module", params=["llada", "dream"])
def model(request):
    return tiny(request.param)


def remask_config(rule: str, **over) -> DecodeConfig:
    return DecodeConfig(**{**BASE, "remask": rule, **KNOBS[rule], **over})


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("cache", ["prefix", "dual", "vicinity"])
def test_caches_refreshing_every_step_equal_none_with_remasking(model, rule, cache):
    expected, _ = decode(model, remask_config(rule))
    got, _ = decode(model, remask_config(rule, cache=cache, cache_update_freq=1))
    assert [c.token_ids for c in got] == [c.token_ids for c in expected]
    assert [c.nfe for c in got] == [c.nfe for c in expected]


@pytest.mark.parametrize("cache", sorted(set(CACHES.names()) - {"none", "prefix", "dual", "vicinity"}))
def test_other_caches_refuse_remasking_with_the_reason(cache):
    with pytest.raises(ConfigError, match=f"cache '{cache}' reuses .* which remask 'wino' may reopen or edit"):
        DecodeConfig(**BASE, cache=cache, remask="wino")


@pytest.mark.parametrize("rule", RULES)
def test_remasking_changes_something_and_still_ends(model, rule):
    """The rule acts (the tokens or the step counts differ from no remasking) and every row finishes."""
    parallel = dict(commit="linear", steps=4)   # 4 commits per step: room to reopen up to 3
    plain, _ = decode(model, DecodeConfig(**{**BASE, **parallel}))
    remasked, _ = decode(model, remask_config(rule, remask_threshold=1.0, edit_threshold=0.01, **parallel))
    assert [(c.token_ids, c.nfe) for c in remasked] != [(c.token_ids, c.nfe) for c in plain]
    assert all(c.finish_reason in ("eos", "length") for c in remasked)


@pytest.mark.parametrize("rule", RULES)
def test_early_stop_and_streaming_keep_their_guarantees(model, rule):
    """Tokens before the first EOS equal decoding to the end; the stream never sends a token that changes."""
    cfg = remask_config(rule, remask_threshold=1.0)
    stopped, streamed = decode(model, cfg, stream=True)
    full, _ = decode(model, cfg.replace(stop_at_eos=False))
    for s, f, text in zip(stopped, full, streamed):
        assert f.token_ids[:len(s.token_ids)] == s.token_ids
        assert text == s.token_ids
