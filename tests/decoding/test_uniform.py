"""Uniform corruption's decisions against transformers' DiffusionGemma generation pieces on the same logits:
the linear temperature schedule, the entropy-bound acceptance, the renoise draws and the stable-and-confident
stop. transformers is a test-only dependency (skipped when it is absent)."""
from __future__ import annotations

import pytest
import torch

from unmask.decoding.uniform import (StableAndConfident, entropy, entropy_bound_accept, random_canvas,
                                     sample_proposals, temperatures)

gdg = pytest.importorskip("transformers.models.diffusion_gemma.generation_diffusion_gemma")
B, C, V = 3, 16, 50


def logits_with_spread(seed: int) -> torch.Tensor:
    """Rows from nearly one-hot to nearly flat, so some positions are accepted and some not."""
    gen = torch.Generator().manual_seed(seed)
    sharpness = torch.tensor([8.0, 3.0, 0.5])[:, None, None] * torch.rand(B, C, 1, generator=gen) * 2
    return torch.randn(B, C, V, generator=gen) * sharpness


@pytest.mark.parametrize("remaining", [48, 30, 1])
def test_linear_temperature_schedule_matches(remaining):
    logits = logits_with_spread(0)
    ref = gdg.LinearTemperatureScheduleLogitsProcessor(t_min=0.4, t_max=0.8, max_denoising_steps=48)
    want = ref(None, logits, cur_step=torch.tensor(remaining, dtype=torch.int32))
    got = logits / temperatures(torch.full((B,), remaining), 48, 0.4, 0.8)[:, None, None]
    assert torch.equal(got, want)


@pytest.mark.parametrize("bound", [0.01, 0.1, 1.0, 5.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_bound_accepts_the_same_positions(bound, seed):
    logits = logits_with_spread(seed)
    sampler = gdg.EntropyBoundSampler(gdg.EntropyBoundSamplerConfig(entropy_bound=bound), C, V, 10)
    current, proposal = torch.zeros(B, C, dtype=torch.long), torch.ones(B, C, dtype=torch.long)
    want_canvas = sampler.accept_canvas(current, proposal, logits, 5)
    got = entropy_bound_accept(entropy(logits), bound)
    assert torch.equal(got, sampler.accepted_token_mask)
    assert torch.equal(torch.where(got, proposal, current), want_canvas)
    assert got.any(-1).all()   # the lowest-entropy position always passes
    if bound == 0.1:
        assert not got.all()   # and the bound does bite


@pytest.mark.parametrize("seed", [0, 7])
def test_canvas_sampling_and_renoise_draw_like_the_reference(seed):
    """Batch 1: canvas randint (1, C), then per step multinomial over (C, V) and a renoise randint (1, C)."""
    logits = logits_with_spread(seed)[:1]
    sampler = gdg.EntropyBoundSampler(gdg.EntropyBoundSamplerConfig(entropy_bound=0.5), C, V, 10)
    torch.manual_seed(seed)
    canvas = sampler.initialize_canvas(1, torch.device("cpu"))
    want = []
    for _ in range(2):
        proposal = torch.multinomial(logits.softmax(-1).view(-1, V), num_samples=1).view(1, C)
        canvas = sampler.renoise_canvas(sampler.accept_canvas(canvas, proposal, logits, 1), 1)
        want.append(canvas)
    gen = torch.Generator().manual_seed(seed)
    ours = random_canvas([gen], C, V, torch.device("cpu"))
    for step in range(2):
        proposal = sample_proposals(logits.softmax(-1), [gen])
        accept = entropy_bound_accept(entropy(logits), 0.5)
        ours = torch.where(accept, proposal, random_canvas([gen], C, V, torch.device("cpu")))
        assert torch.equal(ours, want[step])


@pytest.mark.parametrize("stability", [0, 1, 2])
def test_stable_and_confident_stop_matches(stability):
    """A sequence of argmax canvases that repeat, change and repeat, with logits sharp then flat."""
    ref = gdg.StableAndConfidentStoppingCriteria(stability_threshold=stability, confidence_threshold=0.3)
    ours = StableAndConfident(stability, 0.3)
    history = ours.fresh_history(2, C, torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randint(0, V, (2, C), generator=gen), torch.randint(0, V, (2, C), generator=gen)
    sharp, flat = torch.randn(2, C, V, generator=gen) * 20, torch.randn(2, C, V, generator=gen) * 0.1
    decisions = []
    for argmax, logits in [(a, sharp), (a, sharp), (a, flat), (b, sharp), (b, sharp), (b, sharp), (a, sharp)]:
        want = ref(argmax, logits)
        got, history = ours(argmax, entropy(logits), history)
        assert torch.equal(got, want)
        decisions.append(bool(got[0]))
    assert any(decisions) and not all(decisions)


def test_rows_draw_from_their_own_generators():
    probs = logits_with_spread(1).softmax(-1)
    gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
    together = sample_proposals(probs, gens), random_canvas(gens, C, V, torch.device("cpu"))
    alone = [(sample_proposals(probs[r:r + 1], [torch.Generator().manual_seed(s)]),) for r, s in enumerate((5, 6, 7))]
    for r, (proposal,) in enumerate(alone):
        assert torch.equal(together[0][r], proposal[0])
