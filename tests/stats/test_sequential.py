"""The always-valid verdict: the confidence sequence's boundary, its tuning, and its error rate under peeking."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from app.stats.experiment import build_report, render_text, wilson_interval
from app.stats.sequential import always_valid_p, compare_sequential, half_width, proportion_sequence, rho_for
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


def _accepted_counts(p: float, most: int) -> tuple[np.ndarray, np.ndarray]:
    """For every n up to ``most``, the fewest and most right answers whose sequence still holds ``p``.

    The sequence moves up with the count, so each bound is a binary search over the real function; a
    simulation then only compares counts, however many runs it has.
    """

    def covers(c: int, n: int) -> bool:
        lo, hi = proportion_sequence(c, n)
        return lo <= p <= hi

    low, high = np.zeros(most + 1, dtype=np.int64), np.zeros(most + 1, dtype=np.int64)
    for n in range(1, most + 1):
        centre = min(n, max(0, round(p * n)))
        assert covers(centre, n), (p, n)
        a, b = 0, centre  # the smallest covering count lies in [a, b]
        while a < b:
            mid = (a + b) // 2
            a, b = (a, mid) if covers(mid, n) else (mid + 1, b)
        low[n] = a
        a, b = centre, n  # the largest covering count lies in [a, b]
        while a < b:
            mid = (a + b + 1) // 2
            a, b = (mid, b) if covers(mid, n) else (a, mid - 1)
        high[n] = a
    return low, high


@pytest.mark.parametrize("accuracy", [0.5, 0.9, 0.97, 0.99])
def test_one_accuracys_sequence_covers_it_at_every_look(accuracy):
    most, runs = 2000, 2000
    low, high = _accepted_counts(accuracy, most)
    rng = np.random.default_rng(7)
    counts = np.cumsum(rng.random((runs, most)) < accuracy, axis=1)
    missed = (counts < low[1:]) | (counts > high[1:])
    # Read after every label from the first to the 2,000th, the truth is ever outside in at most 5% of runs.
    assert missed.any(axis=1).mean() <= 0.05


@pytest.mark.parametrize(("correct", "n"), [(0, 1), (9, 10), (90, 100), (500, 1000), (1000, 1000), (19_000, 20_000)])
def test_one_accuracys_sequence_is_wider_than_wilson_and_inside_0_1(correct, n):
    lo, hi = proportion_sequence(correct, n)
    w_lo, w_hi = wilson_interval(correct, n)
    assert 0.0 <= lo <= w_lo <= correct / n <= w_hi <= hi <= 1.0
    assert hi - lo > w_hi - w_lo


def test_one_accuracys_sequence_shrinks_with_labels():
    widths = [hi - lo for lo, hi in (proportion_sequence(int(0.9 * n), n) for n in (100, 1000, 10_000))]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize(
    ("args", "message"), [((0, 0), "n must be positive"), ((5, 4), "correct"), ((-1, 4), "correct")]
)
def test_one_accuracys_sequence_refuses_bad_counts(args, message):
    with pytest.raises(ValueError, match=message):
        proportion_sequence(*args)
