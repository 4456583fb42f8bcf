"""Schedules: each row's window is the first block that still has a mask."""
import torch

from unmask.decoding import DecodeState
from unmask.decoding.schedule import SCHEDULES

MASK = 9


def state_with(masked_rows: list[list[bool]]) -> DecodeState:
    is_masked = torch.tensor(masked_rows)
    state = DecodeState.start(batch=is_masked.shape[0], gen_length=is_masked.shape[1], mask_id=MASK,
                              eos_ids=(1,), device="cpu")
    state.tokens = torch.where(is_masked, MASK, 5)
    state.is_masked = is_masked
    return state


def test_blocks_pick_the_first_block_with_a_mask_per_row():
    state = state_with([[True] * 8,
                        [False] * 4 + [True] * 4,
                        [False] * 5 + [True] + [False] * 2,
                        [False] * 8])
    index, window = SCHEDULES.get("blocks")(block_length=4).current(state)
    assert index.tolist() == [0, 1, 1, 1]  # a finished row stays on its last block
    assert window.tolist() == [[True] * 4 + [False] * 4] + [[False] * 4 + [True] * 4] * 3


def test_blocks_with_a_short_last_block():
    state = state_with([[False] * 6 + [True, True]])
    index, window = SCHEDULES.get("blocks")(block_length=3).current(state)
    assert index.tolist() == [2]
    assert window.tolist() == [[False] * 6 + [True, True]]


def test_full_schedule_is_one_window():
    state = state_with([[False] * 3 + [True] * 5])
    index, window = SCHEDULES.get("full")().current(state)
    assert index.tolist() == [0] and window.all()
