"""The arith digit probe: which answer prefix it shows, what it masks, and its report."""
from __future__ import annotations

import pytest

from unmask.train import checkpoint
from unmask.train.probe import digit_accuracy, masked_row, probe_inputs
from test_mdlm import small_config  # pytest puts this folder on sys.path


def test_probe_inputs_stop_each_step_at_its_result() -> None:
    answer = "17-05=12. 12*02=24. #### 24"
    assert probe_inputs(answer, 48) == [("-", "17-05=", 6, 2), ("*", "17-05=12. 12*02=", 16, 2)]
    assert probe_inputs("#### 5", 48) == []
    with pytest.raises(ValueError, match="gen_length"):
        probe_inputs(answer, 10)


def test_masked_row_keeps_the_prefix_and_masks_the_rest() -> None:
    assert masked_row([7, 8], [20, 21, 22, 23], clean=2, gen_length=6, mask_id=2) == [7, 8, 20, 21, 2, 2, 2, 2]


def test_digit_accuracy_reports_every_operation_and_digit(tmp_path) -> None:
    cfg = small_config(str(tmp_path), task="arith", max_seq_len=160)
    run = checkpoint.RunSetup.build(cfg)
    checkpoint.save_model(run.model, run.names, tmp_path, run.config_json)
    checkpoint.save_char_tokenizer(tmp_path)
    report = digit_accuracy(tmp_path, n=20, device="cpu")
    assert report["n_problems"] == 20 and report["n_steps"] >= 20
    digits = {k: v for k, v in report.items() if " digit " in k}
    assert set(k[0] for k in digits) <= {"+", "-", "*"} and all(0 <= v <= 1 for v in digits.values())
    assert all(k.endswith("of 2") for k in digits)  # worked steps write two digits


def test_shipped_tiny_arith_does_the_arithmetic() -> None:
    from unmask.models.resolve import bundled_models

    if "tiny-arith" not in bundled_models():
        pytest.skip("the tiny-arith asset is not built")
    report = digit_accuracy("tiny-arith", n=100, device="cpu")
    assert all(v >= 0.9 for k, v in report.items() if " digit " in k), report
