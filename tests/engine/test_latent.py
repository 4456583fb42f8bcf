"""A λ-conditioned checkpoint (Di4C student): loaded by path with its λ input, decoded with λ drawn per row
and per step from the row's own generator, so a seeded request gets the same tokens alone or in any batch;
plain checkpoints are untouched; a malformed `latent_conditioning` fails with a clear error."""
from __future__ import annotations

import json

import pytest
import torch

from tests.tiny_models import write_tiny_model
from unmask.config import DecodeConfig
from unmask.engine.llm import LLM
from unmask.errors import CheckpointError, RequestError
from unmask.models.loader import load_model

PROMPTS = ["12+5=", "a much longer prompt: 7*3-1=", "x"]
BASE = dict(gen_length=12, block_length=12, steps=3, stop_at_eos=False)


@pytest.fixture(scope="module")
def latent_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("di4c"), latent_conditioning={"features": 4})


@pytest.fixture(scope="module")
def llm(latent_dir):
    return LLM(latent_dir, device="cpu")


def decode(llm: LLM, rows: list[tuple[str, int]], cfg: DecodeConfig) -> list[list[int]]:
    """Each (prompt, seed) as one request of a single engine batch; tokens in request order."""
    engine = llm.make_engine(max_running=len(rows))
    ids = [engine.add_request(llm.encode([p])[0], cfg.replace(seed=s)) for p, s in rows]
    done: dict[str, list[int]] = {}
    while engine.has_unfinished():
        for out in engine.step():
            if out.finished:
                done[out.request_id] = out.completion.token_ids
    return [done[i] for i in ids]


def fed_latents(llm: LLM, monkeypatch) -> list[torch.Tensor]:
    """Records the `latent` of every forward of llm's model."""
    seen, forward = [], llm.model.forward

    def spy(*args, latent=None, **kwargs):
        seen.append(latent.clone())
        return forward(*args, latent=latent, **kwargs)
    monkeypatch.setattr(llm.model, "forward", spy)
    return seen


def test_loading_by_path_builds_the_lambda_input(latent_dir) -> None:
    model, spec = load_model(latent_dir)
    assert spec.latent_conditioned and model.latent is not None and model.latent.n_features == 4
    ids, pos = torch.tensor([[5, 6, 7, 2]]), torch.arange(4)[None]
    a, b = model(ids, pos, latent=torch.tensor([0.1])), model(ids, pos, latent=torch.tensor([0.8]))
    assert not torch.allclose(a, b)                    # λ changes the prediction: the input is wired in
    with pytest.raises(ValueError, match="needs latent"):
        model(ids, pos)


def test_lambda_comes_from_each_rows_generator_one_draw_per_step(llm, monkeypatch) -> None:
    seen = fed_latents(llm, monkeypatch)
    decode(llm, [(PROMPTS[0], 11), (PROMPTS[1], 22)], DecodeConfig(**BASE))
    assert len(seen) == 3 and all(lam.shape == (2,) for lam in seen)
    for row, seed in enumerate((11, 22)):
        gen = torch.Generator().manual_seed(seed)
        expected = torch.stack([torch.rand((), generator=gen) for _ in range(3)])   # greedy: λ is the only draw
        assert torch.equal(torch.stack([lam[row] for lam in seen]), expected)


@pytest.mark.parametrize("knobs", [{}, {"temperature": 1.0}, {"cache": "prefix", "steps": 6, "block_length": 4},
                                   {"cfg_scale": 1.0}, {"commit": "threshold", "threshold": 0.3}])
def test_a_request_gets_the_same_tokens_alone_and_in_a_batch(llm, knobs) -> None:
    cfg = DecodeConfig(**{**BASE, **knobs})
    batch = decode(llm, [(PROMPTS[0], 1), (PROMPTS[1], 2), (PROMPTS[2], 3)], cfg)
    for row, (prompt, seed) in enumerate([(PROMPTS[0], 1), (PROMPTS[1], 2), (PROMPTS[2], 3)]):
        assert decode(llm, [(prompt, seed)], cfg) == [batch[row]], (knobs, row)


def test_the_seed_picks_the_lambdas_and_so_the_tokens(llm) -> None:
    """Greedy decoding of one prompt under 8 seeds: λ differs per seed, and the tokens follow it."""
    outs = decode(llm, [(PROMPTS[1], s) for s in range(8)], DecodeConfig(**BASE))
    assert len({tuple(o) for o in outs}) > 1
    assert decode(llm, [(PROMPTS[1], 5)], DecodeConfig(**BASE)) == [outs[5]]


def test_the_compiled_runner_runs_a_lambda_model_through_its_compiled_forward(llm) -> None:
    from unmask.engine.build import build_parts
    from unmask.engine.runner import Runner

    runner = Runner(llm.model, llm.spec, compile=True, backend="eager")
    model, core = runner.functions(build_parts(DecodeConfig(**BASE), llm.spec, []))
    assert model is runner._forward and core is None
    assert any("λ-conditioned" in why for why in runner.fallbacks.values())


@pytest.mark.slow
def test_compiled_runner_falls_back_to_the_compiled_forward_with_the_same_tokens(latent_dir) -> None:
    from unmask.engine import runner

    llm = LLM(latent_dir, device="cpu")
    eager = decode(llm, [(PROMPTS[0], 4), (PROMPTS[1], 5)], DecodeConfig(**BASE))
    original = runner.Runner.__init__

    def eager_backend(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "backend": "eager"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner.Runner, "__init__", eager_backend)
        llm.compile = True
        engine_tokens = decode(llm, [(PROMPTS[0], 4), (PROMPTS[1], 5)], DecodeConfig(**BASE))
    assert engine_tokens == eager


def test_a_plain_checkpoint_takes_no_lambda(tmp_path, monkeypatch) -> None:
    plain = LLM(write_tiny_model(tmp_path / "plain"), device="cpu")
    assert not plain.spec.latent_conditioned and plain.model.latent is None
    from unmask.engine.build import build_parts

    assert build_parts(DecodeConfig(**BASE), plain.spec, []).latent is None
    seen = []
    forward = plain.model.forward
    monkeypatch.setattr(plain.model, "forward", lambda *a, **k: seen.append(k.get("latent")) or forward(*a, **k))
    first = plain.generate(["1+1="], DecodeConfig(**BASE, seed=0))[0].token_ids
    assert seen and all(lam is None for lam in seen)
    assert plain.generate(["1+1="], DecodeConfig(**BASE, seed=9))[0].token_ids == first   # greedy: no seed effect
    with pytest.raises(ValueError, match="not λ-conditioned"):
        plain.model(torch.tensor([[5]]), torch.tensor([[0]]), latent=torch.tensor([0.5]))


def test_logits_of_a_lambda_model_take_one_lambda_per_row(llm) -> None:
    a = llm.logits([[5, 6, 2]], latent=[0.2])
    assert a.shape == (1, 3, llm.model.cfg.vocab_size)
    assert not torch.allclose(a, llm.logits([[5, 6, 2]], latent=[0.7]))
    with pytest.raises(RequestError, match="λ-conditioned"):
        llm.logits([[5, 6, 2]])
    with pytest.raises(RequestError, match="one λ per row"):
        llm.logits([[5, 6, 2]], latent=[0.1, 0.2])


@pytest.mark.parametrize("bad, message", [
    ({"features": "8"}, "latent_conditioning.features must be an integer"),
    ({"features": 0}, "latent_conditioning.features must be an integer in"),
    ([8], "latent_conditioning must be an object"),
    ({"features": 8, "extra": 1}, "latent_conditioning must be an object"),
])
def test_a_malformed_latent_conditioning_is_a_clear_error(latent_dir, tmp_path, bad, message) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(latent_dir, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["latent_conditioning"] = bad
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=f"config.json: {message}"):
        LLM(broken, device="cpu")


def test_a_lambda_config_without_the_lambda_weights_lists_them(latent_dir, tmp_path) -> None:
    plain = write_tiny_model(tmp_path / "plain")
    cfg = json.loads((plain / "config.json").read_text())
    (plain / "config.json").write_text(json.dumps({**cfg, "latent_conditioning": {"features": 4}}))
    with pytest.raises(CheckpointError, match="missing.*latent_proj"):
        LLM(plain, device="cpu")
