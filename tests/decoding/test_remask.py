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
         "edit": {"edit_threshold": 0.5},
         "remdm": {"commit": "remdm", "temperature": 1.0, "seed": 5, "eta": 0.5}}


def synthetic(seed: int = 0) -> tuple[StepView, torch.Tensor, DecodeState]:
    g = torch.Generator().manual_seed(seed)
    state = DecodeState.start(B, G, mask_id=99, eos_ids=(1,), device="cpu")
    state.is_masked = torch.rand(B, G, generator=g) < 0.5
    state.tokens = torch.where(state.is_masked, 99, torch.randint(2, 50, (B, G), generator=g))
    state.finished = torch.tensor([False, False, False, True])
    state.reopened = (torch.rand(B, G, generator=g) < 0.2).long()
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
    assert not (changes.reopen & (state.reopened >= rule.max_reopen)).any(), "reopened at most max_reopen times"
    assert not (changes.edit & (view.proposed == state.tokens)).any(), "an edit changes the token"
    if name == "low-confidence":
        assert (changes.reopen.sum(-1) <= 2).all()
        assert not (changes.reopen & (view.current_prob >= 0.8)).any()


def test_reopen_takes_the_least_supported_tokens():
    view, commit, state = synthetic(1)
    rule = construct(REMASK.get("wino"), DecodeConfig(remask="wino", remask_threshold=1.0), block_length=BLOCK)
    changes = rule.select(view, commit, state)
    for b in range(B):
        chosen = changes.reopen[b]
        eligible = view.window[b] & ~state.is_masked[b] & ~commit[b] & ~state.finished[b] & (state.reopened[b] < 1)
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


@pytest.mark.parametrize("rule", [r for r in RULES if not REMASK.get(r).shadow])
@pytest.mark.parametrize("cache", ["prefix", "dual", "vicinity"])
def test_caches_refreshing_every_step_equal_none_with_remasking(model, rule, cache):
    # greedy tokens: a sampler's noise is drawn over the positions a forward predicts, which a cache narrows
    expected, _ = decode(model, remask_config(rule, temperature=0.0))
    got, _ = decode(model, remask_config(rule, temperature=0.0, cache=cache, cache_update_freq=1))
    assert [c.token_ids for c in got] == [c.token_ids for c in expected]
    assert [c.nfe for c in got] == [c.nfe for c in expected]


@pytest.mark.parametrize("cache", sorted(set(CACHES.names()) - {"none", "prefix", "dual", "vicinity", "block-causal"}))
def test_other_caches_refuse_remasking_with_the_reason(cache):
    with pytest.raises(ConfigError, match=f"cache '{cache}' reuses .* which remask 'edit' may reopen or edit"):
        DecodeConfig(**BASE, cache=cache, remask="edit")


@pytest.mark.parametrize("rule", [r for r in RULES if REMASK.get(r).shadow])
@pytest.mark.parametrize("cache", sorted(set(CACHES.names()) - {"none"}))
def test_shadow_rules_need_the_cache_free_path(rule, cache):
    with pytest.raises(ConfigError, match=f"remask '{rule}' verifies tokens with a shadow block"):
        DecodeConfig(**BASE, cache=cache, remask=rule)


@pytest.mark.parametrize("rule", [r for r in RULES if REMASK.get(r).shadow])
def test_the_shadow_block_costs_one_row_and_a_block_more_positions(model, rule):
    net, _ = model
    cfg = remask_config(rule)
    done, _ = decode(model, cfg, prompts=[PROMPTS[0]])
    plain, _ = decode(model, cfg.replace(remask="none"), prompts=[PROMPTS[0]])
    L = len(PROMPTS[0]) + cfg.gen_length
    assert done[0].model_rows == done[0].nfe
    assert done[0].computed == done[0].nfe * (L + cfg.block_length) * len(net.layers)
    assert plain[0].computed == plain[0].nfe * L * len(net.layers)


def test_the_shadow_block_predicts_each_token_from_everything_else(model):
    """The decoding logits are the plain forward's (real positions never see the shadow queries). On a
    one-layer LLaDA the shadow logits of window position p equal a plain forward with only p masked: exact
    leave-one-out (deeper layers let p's information reach the other keys, as in WINO's shadow block)."""
    import copy

    from unmask.cache import CACHES
    from unmask.cache.plan import Canvas
    from unmask.engine.step import shadow_forward
    from unmask.models.cache_view import positions_from_mask

    net, spec = model
    P, G, W = 5, 16, 8
    state = DecodeState.start(1, G, mask_id=spec.mask_id, eos_ids=spec.eos_ids, device="cpu")
    state.tokens = torch.randint(3, 40, (1, G))
    state.is_masked = torch.zeros(1, G, dtype=torch.bool)
    prompt = torch.randint(3, 40, (1, P))
    key_mask = torch.ones(1, P + G, dtype=torch.bool)
    canvas = Canvas(prompt, key_mask, positions_from_mask(key_mask), spec.logit_shift)
    window = (torch.arange(G) >= 8)[None]
    plan = CACHES.get("none")(spec).plan(canvas, state, window)
    one_layer = copy.deepcopy(net)
    one_layer.layers = one_layer.layers[:1]
    with torch.inference_mode():
        main, (where, shadow) = shadow_forward(net, canvas, state, window, plan, W)
        torch.testing.assert_close(main, net(canvas.ids(state), canvas.positions, plan.view, plan.logits_at))
        if spec.logit_shift:
            return
        _, (where, shadow) = shadow_forward(one_layer, canvas, state, window, plan, W)
        for i, p in enumerate(where[0].tolist()):
            ids = canvas.ids(state).clone()
            ids[0, P + p] = spec.mask_id
            alone = one_layer(ids, canvas.positions, plan.view, torch.tensor([[P + p]]))[0, 0]
            torch.testing.assert_close(shadow[0, i], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rule", RULES)
def test_remasking_changes_something_and_still_ends(model, rule):
    """The rule acts (the tokens or the step counts differ from no remasking) and every row finishes."""
    parallel = dict(commit="linear", steps=4) if rule != "remdm" else dict(eta=1.0)   # room to change things
    plain, _ = decode(model, remask_config(rule, **parallel).replace(remask="none"))
    remasked, _ = decode(model, remask_config(rule, remask_threshold=1.0, edit_threshold=0.01, **parallel))
    assert [(c.token_ids, c.nfe) for c in remasked] != [(c.token_ids, c.nfe) for c in plain]
    assert all(c.finish_reason in ("eos", "length") for c in remasked)


@pytest.mark.parametrize("rule", [r for r in RULES if REMASK.get(r).shadow])
def test_a_block_committed_in_one_step_is_verified_before_the_row_moves_on(model, rule):
    """One-shot commits (threshold ~0): the verifying rule spends one more forward per block on them."""
    one_shot = dict(commit="threshold", threshold=1e-6, stop_at_eos=False)
    plain, _ = decode(model, DecodeConfig(**{**BASE, **one_shot}))
    verified, _ = decode(model, remask_config(rule, remask_threshold=1e-9, **one_shot))   # verifies, never reopens
    assert all(c.nfe == 2 for c in plain)                       # two blocks, one step each
    assert all(c.nfe == 4 for c in verified)                    # plus one verifying forward per block
    assert [c.token_ids for c in verified] == [c.token_ids for c in plain]


@pytest.mark.parametrize("rule", RULES)
def test_early_stop_and_streaming_keep_their_guarantees(model, rule):
    """Tokens before the first EOS equal decoding to the end; the stream never sends a token that changes."""
    cfg = remask_config(rule, remask_threshold=1.0)
    stopped, streamed = decode(model, cfg, stream=True)
    full, _ = decode(model, cfg.replace(stop_at_eos=False))
    for s, f, text in zip(stopped, full, streamed):
        assert f.token_ids[:len(s.token_ids)] == s.token_ids
        assert text == s.token_ids
