"""Bench uncertainty and AUP: hand-computed values, so each formula is checked against arithmetic."""
from __future__ import annotations

import math

import pytest

from unmask.bench.aup import aup, aup_by_family, weight
from unmask.bench.configs import family_of
from unmask.bench.stats import (mcnemar_exact, paired_comparison, score_interval, supports_no_loss,
                                wilson_interval)
from unmask.errors import ConfigError


def test_aup_on_a_hand_computed_example():
    # points (TPF, acc %): (1, 80), (3, 78), (6, 70); y_max 80; the last is 10 below the first: dropped.
    result = aup([3.0, 1.0, 6.0], [78.0, 80.0, 70.0], y_max=80.0)
    w78 = math.exp(-3 * (1 - 78 / 80))                       # 0.9277…
    expected = 1 * 80 + 0.5 * (3 - 1) * (78 * w78 + 80 * 1.0)   # rectangle + one weighted trapezoid
    assert result.aup == pytest.approx(expected) and result.aup == pytest.approx(232.364, abs=1e-3)
    assert result.points == [(1.0, 80.0), (3.0, 78.0)] and result.dropped == [(6.0, 70.0)]


def test_aup_weight_and_single_point():
    assert weight(90.0, 90.0) == 1.0 and weight(95.0, 90.0) == 1.0     # capped at 1
    assert weight(45.0, 90.0) == pytest.approx(math.exp(-1.5))
    assert aup([2.5], [60.0], y_max=60.0).aup == pytest.approx(150.0)   # one point: the rectangle ρ·y
    # below the shared ceiling, a method's area is discounted: same curve, higher y_max, lower AUP
    assert aup([1, 4], [60, 60], y_max=90).aup < aup([1, 4], [60, 60], y_max=60).aup


def test_aup_by_family_shares_the_ceiling_and_skips_empty_outputs():
    results = aup_by_family([("llada", 1.0, 0.9), ("llada", 4.0, 0.88), ("fast", 8.0, 0.9), ("x", 0.0, 0.0)])
    assert [r.family for r in results] == ["llada", "fast"]
    assert results[1].aup == pytest.approx(8.0 * 90.0)
    w = math.exp(-3 * (1 - 88 / 90))
    assert results[0].aup == pytest.approx(90 + 0.5 * 3 * (88 * w + 90))


def test_aup_rejects_fractions_and_bad_lengths():
    with pytest.raises(ConfigError, match="percent"):
        aup([1.0], [0.9], y_max=190.0)
    with pytest.raises(ConfigError):
        aup([1.0, 2.0], [90.0], y_max=90.0)
    with pytest.raises(ConfigError, match="TPF"):
        aup([0.0], [90.0], y_max=90.0)


def test_wilson_interval_known_values():
    low, high = wilson_interval(63, 64)                 # 98.4%: the interval is asymmetric, inside [0, 1]
    assert (round(low, 4), round(high, 4)) == (0.9167, 0.9972)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert score_interval([1.0] * 63 + [0.0]) == wilson_interval(63, 64)
    low, high = score_interval([0.5, 0.7, 0.9, 0.6])     # non-binary: a bootstrap interval of the mean
    assert 0.5 <= low < 0.675 < high <= 0.9


def test_mcnemar_exact():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)   # all 5 disagreements one way: 2·(1/2)^5
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)


def test_paired_comparison_counts_disagreements_and_brackets_the_difference():
    base = [1.0] * 90 + [0.0] * 10
    config = [1.0] * 85 + [0.0] * 5 + [1.0] * 2 + [0.0] * 8   # 5 lost, 2 gained
    p = paired_comparison(config, base)
    assert (p.worse, p.better, p.n) == (5, 2, 100) and p.diff == pytest.approx(-0.03)
    assert p.low < -0.03 < p.high and p.p_value == pytest.approx(mcnemar_exact(5, 2))
    assert not supports_no_loss(p)                           # the interval reaches below −1 point
    same = paired_comparison(base, base)
    assert (same.diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0) and supports_no_loss(same)
    with pytest.raises(ValueError):
        paired_comparison([1.0], [1.0, 0.0])


def test_family_of_labels():
    assert [family_of(x) for x in ("llada", "k=4", "one-shot", "fast-dllm t=0.7", "dkv-cache threshold=0.9")] == \
        ["llada", "llada", "llada", "fast-dllm", "dkv-cache"]
