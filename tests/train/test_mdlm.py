"""The LLaDA SFT objective (hand-computed), answer-prefix conditioning, batch layout, CPU training, exact resume, config errors."""
from __future__ import annotations

import math

import pytest
import torch

from unmask.errors import ConfigError
from unmask.models.cache_view import positions_from_mask
from unmask.models.loader import load_model, parse_config
from unmask.models.transformer import DecoderLM
from unmask.train import checkpoint
from unmask.train.char_tokenizer import EOS_ID, MASK_ID, PAD_ID
from unmask.train.command import add_flags, config_from
from unmask.train.data import BatchStream, collate
from unmask.train.mdlm import (TrainConfig, loss_on, masked_diffusion_loss, noise_batch, sample_t, train,
                               uses_autocast)

@pytest.fixture(scope="module", autouse=True)
def _import_optim() -> None:
    """torch.optim's first optimizer imports torch._dynamo (seconds, once per process): pay it in setup."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)], foreach=False)


PAIRS = [([5, 6, 7], [8, 9, EOS_ID, EOS_ID]), ([10], [11, EOS_ID, EOS_ID, EOS_ID])]


def tiny_model(seed: int = 0, **train_config) -> DecoderLM:
    """A 1-layer model in `unmask train`'s LLaDA layout; `train_config`: other TrainConfig fields (objective)."""
    cfg = TrainConfig(d_model=16, n_layers=1, n_heads=2, ffn_hidden=32, max_seq_len=32, **train_config)
    arch, _, _ = parse_config(checkpoint.llada_config(cfg))
    model = DecoderLM(arch)
    checkpoint.init_weights(model, seed)
    with torch.no_grad():  # larger weights than the 0.02 init so the logits differ across positions
        for p in model.parameters():
            p.mul_(20.0) if p.ndim >= 2 else None
    return model


def test_collate_matches_engine_canvas() -> None:
    batch = collate(PAIRS)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, EOS_ID, EOS_ID], [PAD_ID, PAD_ID, 10, 11, EOS_ID, EOS_ID, EOS_ID]]
    assert batch.key_mask.tolist() == [[True] * 7, [False, False] + [True] * 5]
    assert torch.equal(batch.positions, positions_from_mask(batch.key_mask))
    assert batch.positions[1].tolist() == [0, 0, 0, 1, 2, 3, 4]
    assert batch.answer_mask.tolist() == [[False] * 3 + [True] * 4] * 2
    assert batch.answer_lengths.tolist() == [4, 4]


def test_loss_matches_hand_computation() -> None:
    model, batch = tiny_model(), collate(PAIRS)
    masked = torch.tensor([[0, 0, 0, 1, 0, 1, 1], [0, 0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    p_mask = torch.tensor([0.75, 0.5])
    noisy = torch.where(masked, torch.tensor(MASK_ID), batch.input_ids)
    got = loss_on(model, batch, noisy, masked, p_mask)
    with torch.no_grad():
        from unmask.models.cache_view import FullView
        logits = model(noisy, batch.positions, FullView(batch.key_mask)).double()  # (B, L, V)
    total = 0.0
    for b in range(2):
        row = 0.0
        for i in range(7):
            if masked[b, i]:
                z = logits[b, i].tolist()
                log_softmax = z[int(batch.input_ids[b, i])] - math.log(sum(math.exp(v) for v in z))
                row += -log_softmax / float(p_mask[b])
        total += row / 4  # ÷ answer length (gen_length 4, EOS padding included)
    assert got.item() == pytest.approx(total / 2, rel=1e-5)


def test_noise_never_masks_prompt_or_padding() -> None:
    batch = collate(PAIRS * 8)
    noisy, masked, p_mask = noise_batch(batch, torch.Generator().manual_seed(0), eps=1e-3)
    assert not (masked & ~batch.answer_mask).any()
    assert torch.equal(noisy[~masked], batch.input_ids[~masked]) and (noisy[masked] == MASK_ID).all()
    assert ((p_mask >= 1e-3) & (p_mask <= 1)).all()
    t = sample_t(16, torch.Generator().manual_seed(1))  # one draw per stratum [k/16, (k+1)/16)
    assert sorted((t * 16).floor().long().tolist()) == list(range(16))


def test_prefix_conditioning_keeps_a_clean_answer_prefix() -> None:
    pairs = [([5, 6], [8, 9, 10, 11, EOS_ID, EOS_ID]), ([7], [12, 13, EOS_ID, EOS_ID, EOS_ID, EOS_ID])]
    batch = collate(pairs * 32)
    start = batch.input_ids.shape[1] - 6
    ones = torch.ones(64)
    plain = noise_batch(batch, torch.Generator().manual_seed(2), t=ones)
    assert plain[1][:, start:].all()  # t = 1: the whole answer is masked
    noisy, masked, _ = noise_batch(batch, torch.Generator().manual_seed(2), t=ones, prefix_prob=1.0)
    cuts = (~masked[:, start:]).sum(-1)  # every row: a clean prefix of `cut` answer tokens, then all masked
    assert torch.equal(masked[:, start:], torch.arange(6)[None, :] >= cuts[:, None])
    assert (cuts[0::2] <= 4).all() and (cuts[1::2] <= 2).all()  # never past the answer into its EOS padding
    assert len(set(cuts[0::2].tolist())) == 5 and len(set(cuts[1::2].tolist())) == 3  # every cut 0..length occurs
    assert torch.equal(noisy[~masked], batch.input_ids[~masked])
    half = noise_batch(batch, torch.Generator().manual_seed(3), t=ones, prefix_prob=0.5)[1][:, start:]
    assert 10 < int(half.all(-1).sum()) < 54  # about half the rows keep no prefix (plus the cut-0 draws)
    same = noise_batch(batch, torch.Generator().manual_seed(4), prefix_prob=0.0)
    assert torch.equal(same[1], noise_batch(batch, torch.Generator().manual_seed(4))[1])


def test_few_cpu_steps_reduce_loss() -> None:
    model, batch = DecoderLM(tiny_model().cfg), collate(PAIRS * 4)
    checkpoint.init_weights(model, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2, foreach=False)

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(masked_diffusion_loss(model, batch, torch.Generator().manual_seed(s)).item() for s in range(4))

    before = eval_loss()
    for step in range(15):
        loss = masked_diffusion_loss(model, batch, torch.Generator().manual_seed(100 + step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.5 * before


def test_batch_stream_is_a_function_of_step() -> None:
    stream = BatchStream(PAIRS * 5, batch_size=3, seed=4)
    again = BatchStream(PAIRS * 5, batch_size=3, seed=4)
    assert [again.indices(s) for s in (7, 2, 0)] == [stream.indices(s) for s in (7, 2, 0)]
    epoch = sorted(i for s in range(10) for i in stream.indices(s))[:10]  # 10 examples, 30 draws = 3 epochs
    assert epoch == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


def small_config(out: str, **kw: object) -> TrainConfig:
    base = dict(task="copy", train_size=32, out=out, d_model=16, n_layers=1, n_heads=2, ffn_hidden=32,
                max_seq_len=64, steps=4, batch_size=4, warmup=1, eval_n=0, save_every=2, log_every=1, threads=1)
    return TrainConfig(**{**base, **kw})


def test_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch) -> None:
    full = train(small_config(str(tmp_path / "full")))
    real_save = checkpoint.save

    def save_then_crash(cfg, run, model, opt, step, wall_s):  # the run dies right after its step-2 checkpoint
        real_save(cfg, run, model, opt, step, wall_s)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(small_config(str(tmp_path / "split")))
    monkeypatch.undo()
    resumed = train(small_config(str(tmp_path / "split"), resume=True))
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "split")
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert full["step"] == resumed["step"] == 4 and resumed["last_loss"] == pytest.approx(full["last_loss"], rel=1e-5)
    assert not list((tmp_path / "full").glob("*.pt")) and (tmp_path / "full" / checkpoint.STATE_JSON).is_file()


@pytest.mark.parametrize("kw", [{"d_model": 30, "n_heads": 4}, {"steps": 0}, {"dtype": "fp8"}, {"lr": 0.0},
                                {"device": "tpu"}, {"min_lr_ratio": 2.0}])
def test_config_errors(kw: dict) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(**kw)


def test_resume_refuses_a_different_model(tmp_path) -> None:
    train(small_config(str(tmp_path), steps=2))
    with pytest.raises(ConfigError, match="d_model"):
        train(small_config(str(tmp_path), steps=3, d_model=32, resume=True))


def test_init_from_starts_at_another_runs_weights(tmp_path) -> None:
    train(small_config(str(tmp_path / "first"), steps=2))
    trained, _ = load_model(tmp_path / "first")
    fresh = checkpoint.RunSetup.build(small_config(str(tmp_path / "second"), seed=3)).model
    warm = checkpoint.RunSetup.build(small_config(str(tmp_path / "second"), seed=3,
                                                  init_from=str(tmp_path / "first"))).model
    for (name, p), (_, q) in zip(trained.named_parameters(), warm.named_parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(warm.embed.weight, fresh.embed.weight)
    with pytest.raises(ConfigError, match="a different model.*d_model"):
        checkpoint.RunSetup.build(small_config(str(tmp_path / "third"), d_model=32, init_from=str(tmp_path / "first")))
    with pytest.raises(ConfigError, match="need config.json"):
        checkpoint.RunSetup.build(small_config(str(tmp_path / "third"), init_from=str(tmp_path / "nowhere")))


def test_cli_flags_come_from_the_dataclass() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_flags(parser)
    cfg = config_from(parser.parse_args(["--d-model", "60", "--task-max-steps", "2", "--resume", "--lr", "0.01"]))
    assert (cfg.d_model, cfg.task_max_steps, cfg.resume, cfg.lr) == (60, 2, True, 0.01)
    with pytest.raises(ConfigError):
        config_from(parser.parse_args(["--steps", "-1"]))


def test_autocast_follows_dtype_and_the_training_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not uses_autocast(TrainConfig(), cpu) and uses_autocast(TrainConfig(), cuda)
    assert uses_autocast(TrainConfig(dtype="bf16"), cpu) and not uses_autocast(TrainConfig(dtype="fp32"), cuda)
