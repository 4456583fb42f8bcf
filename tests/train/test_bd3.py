"""The BD3-LM objective: its training mask (a noisy block sees itself and the clean earlier blocks only), one noise
level per block, a loss that learns, and a run that writes a block-causal checkpoint."""
from __future__ import annotations

import pytest
import torch

from tests.train.test_mdlm import _import_optim, tiny_model  # noqa: F401 (_import_optim: an autouse fixture)
from unmask.errors import ConfigError
from unmask.models.block_mask import bd3_training_mask
from unmask.models.cache_view import MaskView
from unmask.models.loader import load_model
from unmask.train.bd3 import bd3_loss, bd3_loss_on, block_noise
from unmask.train.char_tokenizer import EOS_ID
from unmask.train.data import collate
from unmask.train.mdlm import TrainConfig, train

PAIRS = [([5, 6, 7], [8, 9, 12, 13, EOS_ID, EOS_ID]), ([10], [11, 14, 15, EOS_ID, EOS_ID, EOS_ID])]


def test_training_mask_hides_the_own_clean_block_and_the_future():
    key_mask = torch.tensor([[False, True, True, True, True, True]])
    positions = torch.tensor([[0, 0, 1, 2, 3, 4]])                  # blocks of 2: {1,2} {3,4} {5}
    m = bd3_training_mask(key_mask, positions, 2)[0, 0]             # (12, 12): noisy 0..5, clean 6..11
    assert m[3, :6].tolist() == [False, False, False, True, True, False]      # noisy: its own noisy block
    assert m[3, 6:].tolist() == [False, True, True, False, False, False]      # clean: earlier blocks only
    assert m[9, :6].tolist() == [False] * 6                                   # clean never sees noisy
    assert m[9, 6:].tolist() == [False, True, True, True, True, False]        # clean: block-causal


def test_a_noisy_block_depends_on_earlier_clean_blocks_only():
    """Change the clean copy of a token: logits of noisy positions in its block and earlier do not move."""
    model = tiny_model().eval()
    batch = collate([([5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16])])     # positions 0..11, blocks of 4
    mask = bd3_training_mask(batch.key_mask, batch.positions, 4)
    ids = torch.cat([batch.input_ids, batch.input_ids], 1)
    pos = batch.positions.repeat(1, 2)
    with torch.no_grad():
        base = model(ids, pos, MaskView(mask))
        changed = ids.clone()
        changed[0, 12 + 6] = 30                                                # clean token at position 6 (block 1)
        after = model(changed, pos, MaskView(mask))
    moved = (after[0, :12] - base[0, :12]).abs().amax(-1) > 1e-6              # noisy rows
    assert moved.tolist() == [False] * 8 + [True] * 4                         # only block 2 reads block 1 clean


def test_each_block_has_its_own_noise_level():
    batch = collate(PAIRS * 64)
    _, masked, p = block_noise(batch, 2, torch.Generator().manual_seed(0))
    block = batch.positions // 2
    for row in range(4):
        for b in block[row].unique():
            cols = block[row] == b
            assert p[row, cols].unique().numel() == 1
    assert p[:, batch.answer_start:].flatten().unique().numel() > 64
    assert not masked[~batch.answer_mask].any()


def test_loss_weights_masked_tokens_by_their_blocks_p():
    model = tiny_model()
    batch = collate(PAIRS)
    noisy, masked, p = block_noise(batch, 2, torch.Generator().manual_seed(1))
    loss = bd3_loss_on(model, batch, 2, noisy, masked, p)
    assert torch.isfinite(loss) and loss > 0
    none = bd3_loss_on(model, batch, 2, batch.input_ids, torch.zeros_like(masked), p)
    assert none == 0


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model, batch = tiny_model(), collate(PAIRS * 2)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, foreach=False)
    losses = []
    for step in range(15):
        loss = bd3_loss(model, batch, 4, torch.Generator().manual_seed(step % 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3])


def test_run_writes_a_block_causal_checkpoint(tmp_path):
    cfg = TrainConfig(task="copy", train_size=16, out=str(tmp_path), d_model=16, n_layers=1, n_heads=2,
                      ffn_hidden=32, max_seq_len=64, steps=2, batch_size=4, warmup=1, eval_n=0, save_every=0,
                      log_every=1, threads=1, objective="bd3", block_size=8)
    train(cfg)
    _, spec = load_model(tmp_path)
    assert spec.attention == "block_causal:8" and spec.default_preset == "block-diffusion"


def test_bad_objective_settings_are_refused():
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objective="gpt")
    with pytest.raises(ConfigError, match="prefix_prob"):
        TrainConfig(objective="bd3", prefix_prob=0.5)
    with pytest.raises(ConfigError, match="block_size"):
        TrainConfig(objective="bd3", block_size=0)
