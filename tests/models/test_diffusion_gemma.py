"""DiffusionGemma: our native encoder + canvas decoder against transformers' DiffusionGemmaForBlockDiffusion on a
tiny random checkpoint it saves itself (sliding and global layers, different head dims and K/V heads, MoE on,
every norm and layer scalar randomised), and strict loading of that layout."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dg_reference import one_thread, write_reference  # noqa: F401 (one_thread: a fixture)
from unmask.errors import CheckpointError
from unmask.models.loader import load_model

pytestmark = pytest.mark.usefixtures("one_thread")
P, C = 11, 8   # a prompt longer than the sliding window (6): the sliding layers' K/V are trimmed


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("dgemma")
    reference = write_reference(path, canvas_length=C)
    model, spec = load_model(path)
    return reference, model, spec, path


def fresh_cache(reference):
    from transformers import DynamicCache

    return DynamicCache(config=reference.config.get_text_config(decoder=True))


def test_spec_declares_uniform_corruption_and_encoder_canvas(pair):
    _, model, spec, _ = pair
    assert (spec.corruption, spec.attention, spec.canvas_length, spec.eos_ids) == ("uniform", "encoder_canvas", C, (1,))
    assert [layer.sliding for layer in model.layers] == [True, True, False]
    assert model.layers[2].self_attn.head_dim == 16 and model.layers[2].self_attn.n_kv == 1   # global layer
    assert model.layers[2].self_attn.v_proj is None                                            # k = v


@torch.no_grad()
def test_logits_match_transformers_with_and_without_self_conditioning(pair):
    reference, model, _, _ = pair
    gen = torch.Generator().manual_seed(1)
    prompt, canvas = torch.randint(4, 84, (1, P), generator=gen), torch.randint(0, 84, (1, C), generator=gen)
    cache = fresh_cache(reference)
    want = reference(input_ids=prompt, cache=cache, decoder_input_ids=canvas).logits
    kv = model.encode(prompt[0])
    positions = torch.arange(P, P + C)[None]
    got = model.decode(canvas, positions, [kv])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert got.abs().max() <= 30.0   # soft-capped
    previous = want / 0.6
    want_sc = reference(cache=cache, decoder_input_ids=canvas, self_conditioning_logits=previous).logits
    got_sc = model.decode(canvas, positions, [kv], previous)
    torch.testing.assert_close(got_sc, want_sc, rtol=1e-5, atol=1e-5)
    assert (got_sc - got).abs().max() > 1e-3   # the signal changes the logits


@torch.no_grad()
def test_second_canvas_attends_to_the_encoded_first(pair):
    """Block two: the first canvas is encoded onto the prompt's cache (causal, sliding window across the seam)."""
    reference, model, _, _ = pair
    gen = torch.Generator().manual_seed(2)
    prompt, first, second = (torch.randint(4, 84, (1, n), generator=gen) for n in (P, C, C))
    cache = fresh_cache(reference)
    reference(input_ids=prompt, cache=cache, decoder_input_ids=first)
    want = reference(input_ids=first, cache=cache, decoder_input_ids=second).logits
    kv = model.encode(first[0], model.encode(prompt[0]))
    got = model.decode(second, torch.arange(P + C, P + 2 * C)[None], [kv])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_rows_of_different_prompt_lengths_decode_as_alone(pair):
    _, model, _, _ = pair
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(4, 84, (n,), generator=gen) for n in (4, 13)]
    canvases = torch.randint(0, 84, (2, C), generator=gen)
    sc = torch.randn(2, C, 84, generator=gen)
    kvs = [model.encode(p) for p in prompts]
    positions = torch.stack([torch.arange(len(p), len(p) + C) for p in prompts])
    both = model.decode(canvases, positions, kvs, sc, torch.tensor([True, False]))
    alone = [model.decode(canvases[:1], positions[:1], kvs[:1], sc[:1]), model.decode(canvases[1:], positions[1:], kvs[1:])]
    torch.testing.assert_close(both, torch.cat(alone), rtol=1e-5, atol=1e-5)


def broken_copy(src, tmp_path, edit_tensors=None, edit_config=None):
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    if edit_tensors:
        tensors = load_file(str(dst / "model.safetensors"))
        edit_tensors(tensors)
        save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    if edit_config:
        cfg = json.loads((dst / "config.json").read_text())
        edit_config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("what, edit_tensors, edit_config, message", [
    ("missing", lambda t: t.pop("model.decoder.layers.1.router.proj.weight"), None, "missing"),
    ("missing encoder scalar", lambda t: t.pop("model.encoder.language_model.layers.0.layer_scalar"), None,
     "model.encoder.language_model.layers.0.layer_scalar"),
    ("mis-shaped", lambda t: t.update({"model.decoder.layers.2.self_attn.q_proj.weight": torch.zeros(32, 32)}), None,
     "mis-shaped"),
    ("unexpected", lambda t: t.update({"model.decoder.layers.2.self_attn.v_proj.weight": torch.zeros(16, 32)}), None,
     "unexpected"),
    ("head dim", None, lambda c: c["text_config"]["per_layer_config"].update({"2": {"head_dim": 24}}), "mis-shaped"),
    ("bidirectional encoder", None, lambda c: c["text_config"].update(use_bidirectional_attention="all"),
     "use_bidirectional_attention"),
    ("untied", None, lambda c: c.update(tie_word_embeddings=False), "tie_word_embeddings"),
    ("no experts", None, lambda c: c["text_config"].pop("num_experts"), "num_experts"),
    ("rope", None, lambda c: c["text_config"]["rope_parameters"]["full_attention"].update(rope_type="yarn"), "yarn"),
])
def test_malformed_checkpoint_fails_with_checkpoint_error(pair, tmp_path, what, edit_tensors, edit_config, message):
    broken = broken_copy(pair[3], tmp_path, edit_tensors, edit_config)
    with pytest.raises(CheckpointError, match=message):
        load_model(broken)


def test_vision_tower_tensors_are_skipped_not_loaded(pair):
    names = load_file(str(pair[3] / "model.safetensors"))
    assert any(n.startswith("model.encoder.vision_tower.") for n in names)   # present in the file, text path loads
    assert not any("vision" in n for n, _ in pair[1].named_parameters())
