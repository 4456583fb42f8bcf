"""The autoregressive objective (`unmask train --objective ar`): its loss by hand, causality, a loss that learns,
and a run that writes a checkpoint the loader reads as a causal model."""
from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from tests.train.test_mdlm import _import_optim  # noqa: F401 (an autouse fixture)
from tests.train.test_mdlm import tiny_model as mdlm_tiny_model
from unmask.errors import CheckpointError, ConfigError
from unmask.models.cache_view import MaskView
from unmask.models.loader import load_model, parse_config
from unmask.train import checkpoint
from unmask.train.ar import ar_loss, ar_targets
from unmask.train.char_tokenizer import EOS_ID
from unmask.train.data import collate
from unmask.train.mdlm import TrainConfig, train

PAIRS = [([5, 6, 7], [8, 9, 12, 13, EOS_ID, EOS_ID]), ([10], [11, 14, 15, EOS_ID, EOS_ID, EOS_ID])]


def tiny_model():
    return mdlm_tiny_model(objective="ar")


def test_targets_are_the_answer_and_its_first_eos():
    batch = collate(PAIRS)
    assert ar_targets(batch).tolist() == [[True] * 5 + [False], [True] * 4 + [False] * 2]


def test_loss_matches_hand_computation():
    """Each row alone, unpadded, under a lower-triangular mask: CE of the token after each prefix."""
    model = tiny_model()
    loss = ar_loss(model, collate(PAIRS))
    total, count = 0.0, 0
    for prompt, answer in PAIRS:
        seq = torch.tensor([prompt + answer])
        n = seq.shape[1]
        causal = torch.tril(torch.ones(n, n, dtype=torch.bool))[None, None]
        logits = model(seq, torch.arange(n)[None], MaskView(causal))[0]
        first_eos = answer.index(EOS_ID)
        for i in range(first_eos + 1):                 # answer[i] is predicted by the position before it
            at = len(prompt) + i
            total += F.cross_entropy(logits[at - 1][None], seq[0, at][None]).item()
            count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_a_prediction_never_reads_later_tokens():
    model = tiny_model().eval()
    batch = collate(PAIRS)
    changed = batch.input_ids.clone()
    changed[0, -2] = 30
    with torch.no_grad():
        a = ar_loss(model, batch)
        from unmask.models.block_mask import pattern_mask
        mask = pattern_mask(batch.key_mask, batch.positions, "block_causal:1")
        base = model(batch.input_ids, batch.positions, MaskView(mask))
        after = model(changed, batch.positions, MaskView(mask))
    moved = (after[0] - base[0]).abs().amax(-1) > 1e-6
    assert moved.tolist() == [False] * (moved.numel() - 2) + [True, True] and torch.isfinite(a)


def test_a_few_steps_lower_the_loss():
    model, batch = tiny_model(), collate(PAIRS * 2)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, foreach=False)
    losses = []
    for _ in range(15):
        loss = ar_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_run_writes_a_causal_checkpoint_and_evaluates_it_by_greedy_ar_decoding(tmp_path):
    cfg = TrainConfig(task="copy", train_size=16, out=str(tmp_path), d_model=16, n_layers=1, n_heads=2,
                      ffn_hidden=32, max_seq_len=64, steps=2, batch_size=4, warmup=1, eval_n=4, save_every=0,
                      log_every=1, threads=1, objective="ar")
    stats = train(cfg)
    assert json.loads((tmp_path / "config.json").read_text())["is_causal"] is True
    _, spec = load_model(tmp_path)
    assert spec.autoregressive and spec.logit_shift == 1 and spec.attention == "block_causal:1"
    ev = stats["eval"]
    assert ev["n"] == 4 and 0 <= ev["ar-greedy/accuracy"] <= 1 and ev["ar-greedy/forwards_per_token"] == 1.0


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="prefix_prob"):
        TrainConfig(objective="ar", prefix_prob=0.5)
    cfg = checkpoint.llada_config(TrainConfig(objective="ar"))
    with pytest.raises(CheckpointError, match="is_causal and block_size"):
        parse_config({**cfg, "block_size": 16})
    with pytest.raises(CheckpointError, match="is_causal must be true or false"):
        parse_config({**cfg, "is_causal": "yes"})
