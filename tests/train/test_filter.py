"""unmask train-filter: the trainer sees each state as the engine's rule does, fitting lowers the loss, and a
tiny end-to-end run on tiny-arith writes a filter the engine loads."""
import json
import re

import pytest
import torch

from unmask.cli import main
from unmask.decoding import DecodeState
from unmask.decoding.filter_features import FEATURES
from unmask.decoding.filter_head import FILTER_CONFIG, load_filter
from unmask.decoding.schedule import BlockSchedule
from unmask.errors import ConfigError
from unmask.models.resolve import bundled_models
from unmask.train.filter import FilterConfig, fit, train_filter
from unmask.train.filter_data import teacher_config, windows

MASK = 9


def test_windows_match_the_block_schedule_and_the_engine_step_clock():
    G, block = 8, 4
    states = torch.tensor([[MASK] * 8, [5, MASK, MASK, 5] + [MASK] * 4, [5] * 4 + [MASK] * 4,
                           [5] * 5 + [MASK] * 3, [5] * 5 + [MASK, 5, MASK]])
    window, step = windows(states, MASK, block)
    s = DecodeState.start(1, G, mask_id=MASK, eos_ids=(1,), device="cpu")
    for t in range(len(states)):                      # the engine: open_windows before the step, apply after it
        s.tokens = states[t:t + 1]
        s.is_masked = s.tokens == MASK
        index, w = BlockSchedule(block).current(s)
        s.open_windows(index, w)
        assert torch.equal(w[0], window[t]) and s.window_step.item() == step[t].item(), t
        s.window_step += 1
        s.row_step += 1
    assert step.tolist() == [0, 1, 0, 1, 2]


def test_fitting_lowers_the_loss_on_a_learnable_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, len(FEATURES), generator=g)
    y = (x[:, 0] > 0.7).float()                     # a constant guess of 0.3 has a BCE of 0.61
    _, report = fit(x, y, FilterConfig(epochs=8, batch_size=64, lr=1e-2, log=lambda _: None))
    assert report["history"][-1]["val_loss"] < 0.15 and report["history"][-1]["val_accuracy"] > 0.95


def test_teacher_specs_parse_and_bad_ones_are_named():
    cfg = teacher_config("threshold=0.7,block=0", 48, 16)
    assert (cfg.commit, cfg.threshold, cfg.window_length) == ("threshold", 0.7, 48)
    with pytest.raises(ConfigError, match="unknown teacher"):
        teacher_config("quota=3", 48, 16)


@pytest.mark.parametrize("flags, words", [(["--prompts", "0"], "--prompts"), (["--lr", "0"], "--lr"),
                                          (["--round-thresholds", "a,b"], "round-thresholds"),
                                          (["--features", "p1,nope,token_bucket"], "--features: .*unknown: nope"),
                                          (["--features", "token_bucket,p1"], "ending in token_bucket")])
def test_cli_refuses_bad_settings(flags, words, capsys):
    assert main(["train-filter", *flags]) != 0
    assert re.search(words, capsys.readouterr().err)


@pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
def test_a_tiny_run_writes_a_filter_the_engine_loads(tmp_path):
    from unmask import LLM, DecodeConfig

    cfg = FilterConfig(prompts=3, teachers=("threshold=0.9",), rounds=1, epochs=2, reference_every=8,
                       val_prompts=2, val_thresholds=(0.5,), out=str(tmp_path), log=lambda _: None)
    path = train_filter(cfg)
    meta = json.loads((tmp_path / FILTER_CONFIG).read_text())
    assert meta["samples"] > 0 and len(meta["history"]) == 2 and meta["trained_on"]["model"] == "tiny-arith"
    assert meta["validation"]["recommended_threshold"] == 0.5 and meta["validation"]["prompts"] == 2
    assert load_filter(path).hidden == 32
    out = LLM("tiny-arith", device="cpu").generate(["Ann has 23 pens. She buys 45 more. How many pens now?\n"],
                                                    DecodeConfig(gen_length=48, block_length=16, commit="learned",
                                                                 learned_filter=str(tmp_path)))
    assert out[0].nfe >= 1 and out[0].finish_reason in ("eos", "length")


def test_filter_prompts_are_new_to_the_teacher_and_never_the_evaluation_problems():
    from unmask.bench.tasks import get_task
    from unmask.bench.tasks.base import bucket_of
    from unmask.train.filter import filter_examples

    fresh = filter_examples(FilterConfig(held_out=50), 30)
    held = {e.question for e in get_task("arith").examples("test", 50)}
    assert len(fresh) == 30 and not any(e.question in held for e in fresh)
    assert all(bucket_of(e.question) == "test" for e in fresh)    # the bucket no training set draws from


@pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
def test_the_trainer_computes_the_features_the_engines_rule_computed(tmp_path, monkeypatch):
    """Decode with commit='learned', recording the features the rule feeds its head at each step (the previous
    forward's included); the trainer's features of the streamed trajectory are the same numbers."""
    from unmask import LLM
    from unmask.decoding.filter_head import FilterHead
    from unmask.train.filter_data import samples, trajectories

    torch.manual_seed(0)
    FilterHead().save(tmp_path)
    seen = []
    original = FilterHead.probability

    def recording(self, features):
        seen.append(features.clone())
        return original(self, features)

    monkeypatch.setattr(FilterHead, "probability", recording)
    llm = LLM("tiny-arith", device="cpu")
    prompt = llm.encode(["Ann has 23 pens. She buys 45 more. How many pens now?\n"])[0]
    cfg = teacher_config(f"learned=0.9,path={tmp_path}", 48, 16)
    canvases = trajectories(llm, [prompt], cfg)[0]
    states = torch.tensor(canvases[:-1])
    assert len(seen) == len(states) > 2
    window = torch.stack([windows(states, llm.spec.mask_id, 16)[0][t] for t in range(len(states))])
    engine = torch.cat([f[0][(states[t] == llm.spec.mask_id) & window[t]] for t, f in enumerate(seen)])
    x, _ = samples(llm, prompt, canvases[:-1], canvases[-1], 16)
    assert x.shape == engine.shape
    assert torch.allclose(x.double(), engine, atol=1e-5)


@pytest.mark.skipif("tiny-arith" not in bundled_models(), reason="tiny-arith asset not built")
def test_sampling_every_third_state_keeps_their_features_and_labels_exactly():
    from unmask import LLM, DecodeConfig
    from unmask.train.filter_data import samples, trajectories

    llm = LLM("tiny-arith", device="cpu")
    prompt = llm.encode(["Tom has 17 cups. He loses 5 and doubles them. How many does he have?\n"])[0]
    linear = DecodeConfig(gen_length=48, steps=24, block_length=16, commit="linear", stop_at_eos=False)
    canvases = trajectories(llm, [prompt], linear)[0]                 # the reference rule, two tokens per step
    states, final = canvases[:-1], canvases[-1]
    assert len(states) == 24
    x_all, y_all = samples(llm, prompt, states, final, 16)
    x_3, y_3 = samples(llm, prompt, states, final, 16, every=3)
    mask_id = llm.spec.mask_id
    window = windows(torch.tensor(states), mask_id, 16)[0]
    per_state = [int(((torch.tensor(s) == mask_id) & window[t]).sum()) for t, s in enumerate(states)]
    rows = torch.cat([torch.full((n,), t) for t, n in enumerate(per_state)])
    chosen = rows % 3 == 0
    assert torch.allclose(x_3, x_all[chosen], atol=1e-6) and torch.equal(y_3, y_all[chosen])
    assert x_all[rows > 0][:, FEATURES.index("prev_known")].sum() > 0         # later states know their previous
