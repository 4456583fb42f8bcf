"""End-of-Text Prediction on a hand-made step: which tail counts as ended, and what gets filled."""
import pytest
import torch

from unmask.config import DecodeConfig
from unmask.decoding import DecodeState
from unmask.decoding.eotp import EndOfText
from unmask.errors import ConfigError

MASK, EOS, A = 9, 1, 5


def state(tokens: list[int]) -> DecodeState:
    s = DecodeState.start(1, len(tokens), mask_id=MASK, eos_ids=(EOS,), device="cpu")
    s.tokens = torch.tensor([tokens])
    s.is_masked = s.tokens == MASK
    return s


def extend(tokens, proposed, prob, commit=None, predicted=None, threshold=0.9):
    s = state(tokens)
    G = len(tokens)
    commit = torch.zeros(1, G, dtype=torch.bool) if commit is None else torch.tensor([commit])
    predicted = torch.ones(1, G, dtype=torch.bool) if predicted is None else torch.tensor([predicted])
    return EndOfText(threshold).extend(commit, torch.tensor([proposed]), torch.tensor([prob]), predicted, s)[0].tolist()


def test_a_confident_eos_tail_is_filled_even_outside_the_window():
    # positions 3..5 masked, predicted EOS with p ≥ 0.9 → filled; position 2 predicts EOS at 0.5 → not part of it
    out = extend([A, MASK, MASK, MASK, MASK, MASK], [A, A, EOS, EOS, EOS, EOS], [1, .6, .5, .95, .99, .9])
    assert out == [False, False, False, True, True, True]


def test_a_committed_eos_or_one_committed_now_joins_the_tail():
    out = extend([A, MASK, MASK, EOS, MASK, MASK], [A, A, EOS, EOS, EOS, EOS], [1, .6, .5, 1, .95, .99],
                 commit=[False, False, True, False, False, False])
    assert out == [False, False, True, False, True, True]   # 2 (committed now) … end: all EOS


def test_a_non_eos_token_or_an_unpredicted_position_breaks_the_tail():
    assert extend([A, MASK, A, MASK], [A, EOS, A, EOS], [1, .99, 1, .99]) == [False, False, False, True]
    assert extend([A, MASK, MASK, MASK], [A, EOS, EOS, EOS], [1, .99, .99, .99],
                  predicted=[True, True, True, False]) == [False, False, False, False]
    assert extend([A, MASK, MASK], [A, EOS, EOS], [1, .99, .8]) == [False, False, False]   # last one unsure


def test_eotp_refuses_remask_rules():
    with pytest.raises(ConfigError, match="eotp"):
        DecodeConfig(eotp=True, remask="low-confidence")
    assert DecodeConfig(eotp=True).eotp
