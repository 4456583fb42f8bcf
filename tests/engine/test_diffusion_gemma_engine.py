"""DiffusionGemma through the engine: seeded generation equal to transformers' `generate` token for token over
several canvases, batch invariance, refusals with the reason, and the LLM / CLI / server paths."""
from __future__ import annotations

import json

import pytest
import torch

from dg_reference import one_thread, write_reference  # noqa: F401 (one_thread: a fixture)
from unmask.config import DecodeConfig
from unmask.engine.engine import Engine
from unmask.errors import ConfigError, RequestError
from unmask.models.loader import load_model

pytestmark = pytest.mark.usefixtures("one_thread")
C = 8
PROMPTS = ([5, 17, 33, 9, 60, 41, 12], [40, 7], [11, 22, 33, 44, 55, 66, 77, 8, 9, 10, 12, 13])
# (knobs, as transformers names them): partial acceptance; stop after each canvas's first step
SETTINGS = {
    "accept": dict(canvas_steps=6, eb_gamma=0.5, t_min=0.05, t_max=0.1, stability_threshold=1,
                   confidence_threshold=0.3),
    "stop": dict(canvas_steps=6, eb_gamma=0.5, t_min=0.4, t_max=0.8, stability_threshold=0,
                 confidence_threshold=10.0),
}

# (seed, prompt) per setting, chosen to cover EOS in the first, second and fourth canvas and no EOS at all
CASES = {"accept": [(0, 0), (16, 0), (5, 1), (19, 1)], "stop": [(0, 0), (2, 0), (3, 1)]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("dgemma_engine")
    reference = write_reference(path, canvas_length=C)
    model, spec = load_model(path)
    return reference, model, spec, path


def reference_generate(reference, prompt, seed, gen_length, canvas_steps, eb_gamma, **knobs):
    from transformers import EntropyBoundSamplerConfig

    torch.manual_seed(seed)
    out = reference.generate(torch.tensor([prompt]), max_new_tokens=gen_length, max_denoising_steps=canvas_steps,
                             sampler_config=EntropyBoundSamplerConfig(entropy_bound=eb_gamma), eos_token_id=[1],
                             pad_token_id=0, **knobs)
    new = out.sequences[0, len(prompt):].tolist()
    return new[:new.index(1)] if 1 in new else new, len(new) // C, float(out.tokens_per_forward[0])


def run(model, spec, requests, join_later=()):
    """requests: (prompt, config) pairs added at once; join_later: pairs added after the first step."""
    engine = Engine(model, spec)
    ids = [engine.add_request(p, c) for p, c in requests]
    done = {}
    with torch.inference_mode():
        first = True
        while engine.has_unfinished():
            done.update((o.request_id, o.completion) for o in engine.step() if o.finished)
            if first:
                ids += [engine.add_request(p, c) for p, c in join_later]
                first = False
    return [done[i] for i in ids]


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_seeded_generate_equals_transformers(checkpoint, setting):
    reference, model, spec, _ = checkpoint
    knobs = SETTINGS[setting]
    canvases, reasons = [], set()
    for seed, which in CASES[setting]:
        prompt = PROMPTS[which]
        want, n_canvases, tpf = reference_generate(reference, prompt, seed, 32, **knobs)
        config = DecodeConfig.preset("diffusion-gemma", gen_length=32, seed=seed, **knobs)
        (got,) = run(model, spec, [(prompt, config)])
        assert got.token_ids == want
        assert got.tokens_per_forward == pytest.approx(tpf, rel=1e-6)
        assert got.nfe <= knobs["canvas_steps"] * n_canvases
        canvases.append(n_canvases)
        reasons.add(got.finish_reason)
        if setting == "stop":
            assert got.nfe == n_canvases   # every canvas stopped after its first step
    assert max(canvases) >= 2 and reasons == {"eos", "length"}


def test_a_batch_gives_each_request_its_tokens_alone(checkpoint):
    _, model, spec, _ = checkpoint
    configs = [DecodeConfig.preset("diffusion-gemma", gen_length=24, seed=s, **SETTINGS["accept"]) for s in (1, 2, 3)]
    alone = [run(model, spec, [(p, c)])[0] for p, c in zip(PROMPTS, configs)]
    together = run(model, spec, list(zip(PROMPTS[:2], configs[:2])), join_later=[(PROMPTS[2], configs[2])])
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    assert [c.nfe for c in together] == [c.nfe for c in alone]


@pytest.mark.parametrize("override, reason", [
    (dict(commit="threshold", alg="confidence"), "no \\[MASK\\] positions"),
    (dict(cache="prefix"), "encoder K/V cache is built in"),
    (dict(remask="low-confidence"), "renoises"),
    (dict(cfg_scale=1.0), "guidance"),
    (dict(temperature=0.7), "linear schedule"),
    (dict(block_length=16), "canvases of 8"),
    (dict(t_min=0.9), "t_max"),
    (dict(steps=12), "canvas_steps"),
])
def test_incompatible_rules_and_caches_are_refused_with_the_reason(checkpoint, override, reason):
    _, model, spec, _ = checkpoint
    config = DecodeConfig.preset("diffusion-gemma", gen_length=16, **override)
    with pytest.raises(ConfigError, match=reason):
        Engine(model, spec).add_request(PROMPTS[0], config)


def test_compile_is_refused_with_the_reason(checkpoint):
    from unmask import LLM

    with pytest.raises(ConfigError, match="encoder–canvas model \\(DiffusionGemma\\) runs eagerly"):
        LLM(str(checkpoint[3]), compile=True)


def test_llm_generates_text_with_the_model_preset(checkpoint):
    from unmask import LLM

    llm = LLM(checkpoint[3], device="cpu")
    assert llm.default_config().commit == "eb" and llm.spec.default_preset == "diffusion-gemma"
    config = DecodeConfig.preset("diffusion-gemma", gen_length=16, canvas_steps=4, seed=3)
    outs = llm.generate(["2+2=", "hello"], config)
    assert all(o.finish_reason in ("eos", "length") and 1 <= o.nfe <= 8 for o in outs)
    assert outs[0].token_ids == llm.generate(["2+2="], config)[0].token_ids
    with pytest.raises(RequestError, match="generate"):
        llm.logits([[4, 5, 6]])


def test_cli_generate(checkpoint, capsys):
    from unmask.cli import main

    rc = main(["generate", "--model", str(checkpoint[3]), "--json", "--set", "gen_length=16", "--canvas-steps", "3",
               "--set", "seed=1", "12+30="])
    assert rc == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["nfe"] >= 1 and record["tokens_per_forward"] > 0


def test_serve_completion_and_refusal(checkpoint):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from unmask import LLM
    from unmask.serve.app import ServeConfig, create_app

    llm = LLM(checkpoint[3], device="cpu")
    app = create_app(llm, llm.preset_config("diffusion-gemma", canvas_steps=3), ServeConfig("dg", max_tokens=32))
    with TestClient(app) as client:
        ok = client.post("/v1/completions", json={"model": "dg", "prompt": "1+2=", "max_tokens": 12, "seed": 4})
        assert ok.status_code == 200, ok.text
        assert ok.json()["usage"]["completion_tokens"] <= 12
        bad = client.post("/v1/completions", json={"model": "dg", "prompt": "1+2=", "max_tokens": 8,
                                                   "unmask": {"overrides": {"cache": "prefix"}}})
        assert bad.status_code == 400 and "encoder K/V cache" in bad.json()["error"]["message"]


def test_the_checkpoints_generation_config_sets_the_defaults(checkpoint, tmp_path):
    import shutil

    from unmask import LLM
    from unmask.errors import CheckpointError

    path = tmp_path / "dg"
    shutil.copytree(checkpoint[3], path)
    generation = {"max_denoising_steps": 12, "t_min": 0.2, "t_max": None, "eos_token_id": [1, 7],
                  "sampler_config": {"entropy_bound": 0.3, "_cls_name": "EntropyBoundSamplerConfig"}}
    (path / "generation_config.json").write_text(json.dumps(generation))
    llm = LLM(path, device="cpu")
    config = llm.default_config()
    assert (config.canvas_steps, config.eb_gamma, config.t_min, config.t_max) == (12, 0.3, 0.2, 0.8)
    assert 7 in llm.spec.eos_ids
    (path / "generation_config.json").write_text(json.dumps({"t_min": -1.0}))
    with pytest.raises(CheckpointError, match="generation_config.json.*t_min"):
        LLM(path, device="cpu")


def test_stream_sends_each_finished_canvas_once(checkpoint):
    _, model, spec, _ = checkpoint
    engine = Engine(model, spec)
    config = DecodeConfig.preset("diffusion-gemma", gen_length=28, seed=16, **SETTINGS["accept"])
    rid = engine.add_request(PROMPTS[0], config, stream_canvas=True)
    streamed, sends, final = [], 0, None
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                streamed += out.new_token_ids
                sends += bool(out.new_token_ids)
                assert out.canvas is not None
                final = out.completion if out.finished else final
    assert streamed == final.token_ids and sends >= 2 and final.finish_reason == "eos"


def test_bench_runs_the_preset_and_refuses_mask_rules_up_front(checkpoint, tmp_path, capsys):
    from unmask.bench.command import main

    args = ["--model", str(checkpoint[3]), "--limit", "2", "--set", "canvas_steps=2", "--out", str(tmp_path)]
    assert main(args + ["--preset", "diffusion-gemma", "--no-baseline"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["records"][0]
    assert record["extra"]["tokens_per_forward"] > 0
    assert main(args + ["--preset", "diffusion-gemma"]) == 2
    assert "config 'llada' cannot run on this model: commit 'linear'" in capsys.readouterr().err
