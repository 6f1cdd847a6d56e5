"""The always-valid verdict: the confidence sequence's boundary, its tuning, and its error rate under peeking."""

import math

import pytest
from scipy.optimize import minimize_scalar

from app.stats.experiment import build_report, render_text
from app.stats.sequential import always_valid_p, compare_sequential, half_width, rho_for
from app.stats.simulation import simulate_peeking
from tests.stats.test_experiment import variant


def test_the_p_value_is_the_level_at_which_the_sequence_touches_zero():
    rho = rho_for(1000, 0.05)
    for z, n in ((2.5, 400), (3.7, 1600), (1.1, 50)):
        p = always_valid_p(z, n, rho)
        if p < 1.0:  # at level p, the half-width equals the estimate: 0 is on the boundary
            assert half_width(1.0, n, p, rho) == pytest.approx(z / math.sqrt(n), rel=1e-9)
    assert always_valid_p(0.0, 500, rho) == 1.0


def test_tuning_makes_the_sequence_tightest_near_n_star():
    for n_star in (200, 1000, 10_000):
        rho = rho_for(n_star, 0.05)
        best = minimize_scalar(lambda r, n=n_star: half_width(1.0, n, 0.05, r), bounds=(1e-4, 1.0), method="bounded")
        assert half_width(1.0, n_star, 0.05, rho) <= best.fun * 1.01


def test_a_sequence_is_wider_than_the_fixed_interval_and_shrinks():
    widths = []
    for n in (100, 400, 1600):
        seq = compare_sequential(int(0.9 * n), n, int(0.92 * n), n)
        lo, hi = seq["confidence_sequence"]
        diff = 0.92 - 0.9
        assert lo < diff < hi
        se = math.sqrt(0.9 * 0.1 / n + 0.92 * 0.08 / n)
        assert (hi - lo) / 2 > 1.96 * se * 0.99  # the price of being valid at every look
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_perfect_versions_do_not_collapse_the_variance():
    seq = compare_sequential(100, 100, 100, 100)
    assert seq["p_value"] == 1.0
    lo, hi = seq["confidence_sequence"]
    assert lo < 0 < hi


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, 0, 1, 1), "n_a"), ((5, 4, 1, 1), "correct_a"), ((1, 1, -1, 1), "correct_b")],
)
def test_bad_counts_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        compare_sequential(*args)


def test_rho_refuses_bad_tuning():
    with pytest.raises(ValueError, match="n_star"):
        rho_for(0, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        rho_for(100, 1.5)


def test_peeking_after_every_50_labels_keeps_the_error_rate_while_the_fixed_test_does_not():
    equal = simulate_peeking(0.9, 0.9, runs=400, seed=1)
    assert equal.looks == 40
    assert equal.sequential_ever <= 0.05
    assert equal.fixed_ever > 0.15  # the fixed-horizon p-value read 40 times crosses 0.05 far too often
    different = simulate_peeking(0.85, 0.95, runs=200, seed=2)
    assert different.sequential_ever >= 0.95  # and a 10-point gap is still found


def test_the_report_and_its_text_carry_the_sequential_verdict():
    report = build_report([variant("v1", labeled=600, correct=540), variant("v2", labeled=600, correct=580)])
    seq = report["comparison"]["sequential"]
    assert set(seq) >= {"p_value", "confidence_sequence", "method", "tuning", "p_value_text", "significant"}
    assert seq["significant"] is True and seq["confidence_sequence"][0] > 0
    assert seq["p_value"] > report["comparison"]["p_value"]  # always-valid costs some evidence
    assert "always valid (safe to peek): p " in render_text(report)
