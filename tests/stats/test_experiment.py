"""Tests for app.stats.experiment: statistics checked against scipy and textbook values, plus the verdict."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from scipy import stats

from app.stats.experiment import (
    VariantData,
    build_report,
    compare_proportions,
    render_text,
    samples_needed,
    srm_test,
    wilson_interval,
)
from app.stats.formatting import format_p
from app.stats.latency import BUCKET_COUNT, bucket_of


def variant(
    version: str,
    *,
    weight: int = 50,
    share: float = 0.5,
    requests: int = 1000,
    labeled: int = 0,
    correct: int = 0,
    latencies: tuple[float, ...] = (),
) -> VariantData:
    """Build a VariantData with defaults for a fair 50/50 split; ``latencies`` (ms) become its histogram."""
    histogram = [0] * BUCKET_COUNT
    for ms in latencies:
        histogram[bucket_of(ms / 1000.0)] += 1
    return VariantData(version, weight, share, requests, labeled, correct, histogram if latencies else ())


def dumps_strict(report: dict[str, Any]) -> str:
    """Serialise like the API does, failing on NaN/inf or non-JSON types."""
    return json.dumps(report, allow_nan=False)


# --- wilson_interval ---------------------------------------------------------


def test_wilson_known_case() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (50, 100), (95, 100), (1234, 5000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = wilson_interval(k, n, confidence)
    assert lo == pytest.approx(expected.low, abs=1e-12)
    assert hi == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_exact_bounds_at_extremes() -> None:
    # Reports show these bounds, so they must be exactly 0 and 1, not 1e-17 off.
    assert wilson_interval(0, 40)[0] == 0.0
    assert wilson_interval(40, 40)[1] == 1.0


def test_wilson_wider_at_higher_confidence() -> None:
    lo90, hi90 = wilson_interval(30, 50, 0.90)
    lo99, hi99 = wilson_interval(30, 50, 0.99)
    assert lo99 < lo90 and hi99 > hi90


@pytest.mark.parametrize(
    ("k", "n", "confidence", "message"),
    [
        (0, 0, 0.95, "n must be positive, got 0"),
        (5, 4, 0.95, "successes must be in [0, 4], got 5"),
        (-1, 4, 0.95, "successes must be in [0, 4], got -1"),
        (2, 4, 1.0, "confidence must be in (0, 1), got 1.0"),
    ],
)
def test_wilson_rejects_invalid(k: int, n: int, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        wilson_interval(k, n, confidence)


# --- compare_proportions -----------------------------------------------------


def test_z_test_textbook_case() -> None:
    # 120/200 vs 140/200: pooled p = 0.65, SE = sqrt(0.65 * 0.35 * 2/200), z = 2.0966, p = 0.0360.
    result = compare_proportions(120, 200, 140, 200)
    assert result["method"] == "z-test"
    assert result["accuracy_diff"] == pytest.approx(0.1)
    assert result["p_value"] == pytest.approx(0.0360, abs=5e-5)


@pytest.mark.parametrize(
    ("ca", "na", "cb", "nb"),
    [(120, 200, 140, 200), (90, 100, 80, 100), (450, 500, 470, 520), (30, 60, 40, 50), (700, 1000, 690, 1000)],
)
def test_z_test_matches_manual_and_uncorrected_chi_square(ca: int, na: int, cb: int, nb: int) -> None:
    pooled = (ca + cb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    z = (cb / nb - ca / na) / se
    manual = 2 * stats.norm.sf(abs(z))
    # The pooled z-test is the square root of Pearson's chi-square without Yates' correction.
    chi2 = stats.chi2_contingency([[ca, na - ca], [cb, nb - cb]], correction=False)

    result = compare_proportions(ca, na, cb, nb)
    assert result["method"] == "z-test"
    assert result["p_value"] == pytest.approx(manual, rel=1e-9)
    assert result["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result["accuracy_diff"] == pytest.approx(cb / nb - ca / na)


@pytest.mark.parametrize(
    ("ca", "na", "cb", "nb"),
    [
        (8, 10, 3, 10),  # tiny samples
        (40, 40, 37, 40),  # 3 failures in total: expected failures 1.5 per arm
        (19, 20, 20, 20),
        (100, 100, 100, 100),  # no failures at all
        (0, 5, 0, 7),  # no successes at all
        (1, 3, 400, 500),  # one arm far smaller than the other
    ],
)
def test_fisher_for_small_expected_counts(ca: int, na: int, cb: int, nb: int) -> None:
    expected = stats.fisher_exact([[ca, na - ca], [cb, nb - cb]], alternative="two-sided")
    result = compare_proportions(ca, na, cb, nb)
    assert result["method"] == "fisher-exact"
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert result["accuracy_diff"] == pytest.approx(cb / nb - ca / na)


def test_method_switches_at_expected_count_five() -> None:
    # 10 failures split over equal arms gives expected 5 per cell: the z-test still applies.
    assert compare_proportions(45, 50, 45, 50)["method"] == "z-test"
    # 9 failures: expected 4.5 in the failure cells, so Fisher takes over.
    assert compare_proportions(45, 50, 46, 50)["method"] == "fisher-exact"


def test_identical_proportions_are_not_different() -> None:
    result = compare_proportions(100, 100, 100, 100)
    assert result["p_value"] == 1.0
    assert result["accuracy_diff"] == 0.0


@pytest.mark.parametrize(
    ("ca", "na", "cb", "nb", "message"),
    [
        (0, 0, 5, 10, "n_a must be positive, got 0"),
        (5, 10, 0, 0, "n_b must be positive, got 0"),
        (11, 10, 5, 10, "correct_a must be in [0, 10], got 11"),
        (5, 10, -1, 10, "correct_b must be in [0, 10], got -1"),
    ],
)
def test_compare_rejects_invalid(ca: int, na: int, cb: int, nb: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compare_proportions(ca, na, cb, nb)


# --- samples_needed ----------------------------------------------------------


def test_samples_needed_textbook_case() -> None:
    # Fleiss without continuity correction: (1.96*sqrt(2*.55*.45) + 0.8416*sqrt(.25+.24))^2 / 0.01 = 387.3.
    n = samples_needed(0.5, 0.6)
    assert n is not None and 385 <= n <= 388
    assert n == 388


def _approx_power(n: int, p_a: float, p_b: float, alpha: float) -> float:
    """Normal-approximation power of the two-sided pooled z-test with n per group (dominant tail)."""
    p_bar = (p_a + p_b) / 2
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    numerator = abs(p_a - p_b) * math.sqrt(n) - z_alpha * math.sqrt(2 * p_bar * (1 - p_bar))
    return float(stats.norm.cdf(numerator / math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))))


@pytest.mark.parametrize(
    ("p_a", "p_b", "alpha", "power"),
    [
        (0.5, 0.6, 0.05, 0.8),
        (0.9, 0.95, 0.05, 0.8),
        (0.7, 0.71, 0.05, 0.9),
        (0.2, 0.4, 0.01, 0.8),
        (0.95, 1.0, 0.05, 0.8),
    ],
)
def test_samples_needed_is_smallest_n_reaching_power(p_a: float, p_b: float, alpha: float, power: float) -> None:
    n = samples_needed(p_a, p_b, alpha, power)
    assert n is not None
    assert _approx_power(n, p_a, p_b, alpha) >= power - 1e-9
    assert _approx_power(n - 1, p_a, p_b, alpha) < power


def test_samples_needed_symmetric_and_monotone() -> None:
    base = samples_needed(0.5, 0.6)
    assert base is not None
    assert samples_needed(0.6, 0.5) == base
    # Smaller gaps, stricter alpha and more power all need more labels.
    harder = [samples_needed(0.5, 0.55), samples_needed(0.5, 0.6, alpha=0.01), samples_needed(0.5, 0.6, power=0.9)]
    assert all(n is not None and n > base for n in harder)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.95, 1.0])
def test_samples_needed_none_without_difference(p: float) -> None:
    assert samples_needed(p, p) is None


@pytest.mark.parametrize(
    ("p_a", "p_b", "alpha", "power", "message"),
    [
        (-0.1, 0.5, 0.05, 0.8, "p_a must be in [0, 1], got -0.1"),
        (0.5, 1.1, 0.05, 0.8, "p_b must be in [0, 1], got 1.1"),
        (0.5, 0.6, 0.0, 0.8, "alpha must be in (0, 1), got 0.0"),
        (0.5, 0.6, 0.05, 1.0, "power must be in (0, 1), got 1.0"),
    ],
)
def test_samples_needed_rejects_invalid(p_a: float, p_b: float, alpha: float, power: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        samples_needed(p_a, p_b, alpha, power)


# --- srm_test ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "shares"),
    [
        ({"v1": 600, "v2": 400}, {"v1": 0.5, "v2": 0.5}),
        ({"v1": 510, "v2": 490}, {"v1": 0.5, "v2": 0.5}),
        ({"v1": 700, "v2": 300}, {"v1": 0.7, "v2": 0.3}),
        ({"v1": 100, "v2": 130, "v3": 70}, {"v1": 0.3, "v2": 0.5, "v3": 0.2}),
        ({"v1": 1, "v2": 0}, {"v1": 0.5, "v2": 0.5}),
    ],
)
def test_srm_matches_scipy_chisquare(observed: dict[str, int], shares: dict[str, float]) -> None:
    total = sum(observed.values())
    expected = stats.chisquare(list(observed.values()), [shares[v] * total for v in observed])
    result = srm_test(observed, shares)
    assert result["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["mismatch"] is bool(expected.pvalue < 0.001)
    assert result["threshold"] == 0.001
    assert result["observed_share"] == {v: c / total for v, c in observed.items()}
    assert result["expected_share"] == pytest.approx(shares)


def test_srm_flags_skewed_split_not_fair_one() -> None:
    assert srm_test({"v1": 600, "v2": 400}, {"v1": 0.5, "v2": 0.5})["mismatch"] is True
    assert srm_test({"v1": 505, "v2": 495}, {"v1": 0.5, "v2": 0.5})["mismatch"] is False
    # The same 60/40 split is exactly right when the weights say 60/40.
    fair = srm_test({"v1": 600, "v2": 400}, {"v1": 0.6, "v2": 0.4})
    assert fair["mismatch"] is False and fair["p_value"] == pytest.approx(1.0)


def test_srm_threshold_is_configurable() -> None:
    observed, shares = {"v1": 540, "v2": 460}, {"v1": 0.5, "v2": 0.5}  # p = 0.0114
    assert srm_test(observed, shares)["mismatch"] is False
    assert srm_test(observed, shares, threshold=0.05)["mismatch"] is True


def test_srm_traffic_to_zero_share_variant_is_immediate_mismatch() -> None:
    result = srm_test({"v1": 500, "v2": 500, "v3": 1}, {"v1": 0.5, "v2": 0.5, "v3": 0.0})
    assert result["mismatch"] is True
    assert result["p_value"] == 0.0
    assert result["statistic"] is None  # infinite chi-square has no JSON form
    dumps_strict(result)


def test_srm_zero_share_variant_without_traffic_is_fine() -> None:
    result = srm_test({"v1": 500, "v2": 500, "v3": 0}, {"v1": 0.5, "v2": 0.5, "v3": 0.0})
    assert result["mismatch"] is False
    assert result["p_value"] == pytest.approx(1.0)


def test_srm_zero_total() -> None:
    result = srm_test({"v1": 0, "v2": 0}, {"v1": 0.5, "v2": 0.5})
    assert result["p_value"] == 1.0
    assert result["mismatch"] is False
    assert result["observed_share"] == {"v1": None, "v2": None}
    dumps_strict(result)


def test_srm_single_variant_cannot_mismatch() -> None:
    result = srm_test({"v1": 1000}, {"v1": 1.0})
    assert result == {**result, "statistic": 0.0, "p_value": 1.0, "mismatch": False}


def test_srm_normalises_shares_and_fills_missing_keys() -> None:
    result = srm_test({"v1": 600}, {"v1": 3, "v2": 2})
    assert result["expected_share"] == pytest.approx({"v1": 0.6, "v2": 0.4})
    assert result["observed_share"] == {"v1": 1.0, "v2": 0.0}
    assert result["mismatch"] is True


@pytest.mark.parametrize(
    ("observed", "shares", "threshold", "message"),
    [
        ({"v1": -1}, {"v1": 1.0}, 0.001, "observed counts must be non-negative: {'v1': -1}"),
        ({"v1": 1}, {"v1": -0.5}, 0.001, "expected shares must be finite and non-negative: {'v1': -0.5}"),
        ({"v1": 1}, {"v1": 1.0}, 0.0, "threshold must be in (0, 1), got 0.0"),
    ],
)
def test_srm_rejects_invalid(
    observed: dict[str, int], shares: dict[str, float], threshold: float, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        srm_test(observed, shares, threshold)


# --- build_report ------------------------------------------------------------


def test_report_shape_and_per_variant_stats() -> None:
    report = build_report(
        [
            variant("v1", requests=520, labeled=100, correct=100, latencies=(10.0, 12.0, 30.0)),
            variant("v2", requests=480, labeled=101, correct=72, latencies=(11.0, 13.0)),
        ]
    )
    assert set(report) == {"baseline", "alpha", "variants", "comparisons", "comparison", "srm", "recommendation"}
    assert report["baseline"] == "v1" and report["alpha"] == 0.05
    v1, v2 = report["variants"]["v1"], report["variants"]["v2"]
    assert set(v1) == {
        "weight", "expected_share", "requests", "observed_share", "labeled", "correct",
        "accuracy", "accuracy_ci95", "latency_p50_ms", "latency_p95_ms",
    }  # fmt: skip
    assert v1["observed_share"] == pytest.approx(0.52)
    assert v1["accuracy"] == 1.0
    assert v2["accuracy"] == pytest.approx(72 / 101)
    assert v2["accuracy_ci95"] == pytest.approx(list(wilson_interval(72, 101)))
    # From the histogram, as histogram_quantile reads it: 12 ms lies in (10, 25], 30 ms in (25, 50].
    assert v1["latency_p50_ms"] == pytest.approx(17.5)
    assert v1["latency_p95_ms"] == pytest.approx(46.25)

    (comp,) = report["comparisons"]
    assert report["comparison"] == comp
    raw = compare_proportions(100, 100, 72, 101)
    assert comp["baseline"] == "v1" and comp["challenger"] == "v2"
    assert comp["accuracy_diff"] == pytest.approx(72 / 101 - 1.0)
    assert comp["p_value"] == comp["p_value_adjusted"] == raw["p_value"]
    assert comp["method"] == raw["method"] == "z-test"
    assert comp["significant"] is True and comp["winner"] == "v1"
    assert comp["samples_needed_per_variant"] == samples_needed(1.0, 72 / 101)
    assert comp["additional_samples_needed"] == 0
    assert report["recommendation"] == "v1 is more accurate (100.0% vs 71.3%, p < 0.001): shift traffic to v1"
    dumps_strict(report)


def test_explicit_baseline_orients_comparisons() -> None:
    report = build_report(
        [variant("v1", labeled=200, correct=180), variant("v2", labeled=200, correct=150)], baseline="v2"
    )
    (comp,) = report["comparisons"]
    assert report["baseline"] == "v2"
    assert (comp["baseline"], comp["challenger"]) == ("v2", "v1")
    assert comp["accuracy_diff"] == pytest.approx(0.15)
    assert comp["winner"] == "v1"


def test_three_variants_are_holm_corrected() -> None:
    variants = [
        variant("v1", weight=34, share=1 / 3, requests=300, labeled=200, correct=180),
        variant("v2", weight=33, share=1 / 3, requests=300, labeled=200, correct=170),
        variant("v3", weight=33, share=1 / 3, requests=300, labeled=200, correct=192),
    ]
    report = build_report(variants)
    v2, v3 = report["comparisons"]
    assert [(c["baseline"], c["challenger"]) for c in (v2, v3)] == [("v1", "v2"), ("v1", "v3")]
    raw2 = compare_proportions(180, 200, 170, 200)["p_value"]
    raw3 = compare_proportions(180, 200, 192, 200)["p_value"]
    assert (v2["p_value"], v3["p_value"]) == (raw2, raw3)
    # Holm: the smaller p is doubled, the larger is kept but never below the first.
    assert raw3 < 0.05 / 2 < raw2
    assert v3["p_value_adjusted"] == pytest.approx(2 * raw3)
    assert v2["p_value_adjusted"] == pytest.approx(max(raw2, 2 * raw3))
    assert v3["significant"] is True and v3["winner"] == "v3"
    assert v2["significant"] is False and v2["winner"] is None
    assert report["comparison"] == v3
    # Sample sizes are planned at the Bonferroni level so they match the corrected decision.
    assert v2["samples_needed_per_variant"] == samples_needed(0.9, 0.85, alpha=0.025)
    assert v2["additional_samples_needed"] == v2["samples_needed_per_variant"] - 200
    assert report["recommendation"] == (
        "v3 is more accurate (96.0% vs 90.0%, Holm-adjusted p = 0.037): shift traffic to v3"
    )
    dumps_strict(report)


def test_correction_can_remove_significance() -> None:
    # Raw p = 0.036 alone is significant; alongside a null comparison it no longer is.
    two = build_report([variant("v1", labeled=200, correct=120), variant("v2", labeled=200, correct=140)])
    assert two["comparison"]["significant"] is True
    three = build_report(
        [
            variant("v1", share=1 / 3, labeled=200, correct=120),
            variant("v2", share=1 / 3, labeled=200, correct=140),
            variant("v3", share=1 / 3, labeled=200, correct=121),
        ]
    )
    headline = three["comparison"]
    assert headline["challenger"] == "v2"
    assert headline["p_value"] == two["comparison"]["p_value"]
    assert headline["significant"] is False
    assert three["recommendation"].startswith("no significant difference yet")


def test_zero_requests() -> None:
    report = build_report([variant("v1", requests=0), variant("v2", requests=0)])
    v1 = report["variants"]["v1"]
    assert v1["observed_share"] is None
    assert v1["accuracy"] is None and v1["accuracy_ci95"] is None
    assert v1["latency_p50_ms"] is None and v1["latency_p95_ms"] is None
    assert report["srm"]["p_value"] == 1.0 and report["srm"]["mismatch"] is False
    (comp,) = report["comparisons"]
    assert comp["p_value"] is None and comp["p_value_adjusted"] is None and comp["accuracy_diff"] is None
    assert comp["significant"] is False and comp["winner"] is None and comp["method"] is None
    assert report["comparison"] == comp
    assert report["recommendation"] == "no labelled predictions yet: send feedback to compare versions"
    dumps_strict(report)


def test_one_side_unlabelled() -> None:
    report = build_report([variant("v1", labeled=50, correct=45), variant("v2")])
    (comp,) = report["comparisons"]
    assert comp["accuracy_diff"] is None and comp["p_value"] is None
    assert comp["samples_needed_per_variant"] is None and comp["additional_samples_needed"] is None
    assert report["variants"]["v1"]["accuracy"] == 0.9
    assert report["recommendation"] == "no labelled predictions yet for v2: send feedback to compare versions"
    dumps_strict(report)


@pytest.mark.parametrize(("labeled", "correct"), [(40, 40), (40, 38), (200, 0)])
def test_equal_accuracy_says_no_difference(labeled: int, correct: int) -> None:
    report = build_report(
        [variant("v1", labeled=labeled, correct=correct), variant("v2", labeled=labeled, correct=correct)]
    )
    comp = report["comparison"]
    assert comp["accuracy_diff"] == 0.0
    assert comp["p_value"] == pytest.approx(1.0)
    assert comp["significant"] is False
    assert comp["samples_needed_per_variant"] is None and comp["additional_samples_needed"] is None
    acc = f"{100 * correct / labeled:.1f}%"
    assert report["recommendation"] == (
        f"no difference observed so far (v1 {acc} vs v2 {acc}, {labeled} labels each): keep collecting labels"
    )
    dumps_strict(report)


def test_equal_accuracy_with_unequal_label_counts() -> None:
    report = build_report([variant("v1", labeled=40, correct=38), variant("v2", labeled=20, correct=19)])
    assert report["recommendation"] == (
        "no difference observed so far (v1 95.0% vs v2 95.0%, 40 and 20 labels): keep collecting labels"
    )


def test_not_significant_says_how_many_more_labels() -> None:
    report = build_report([variant("v1", labeled=100, correct=90), variant("v2", labeled=100, correct=85)])
    comp = report["comparison"]
    assert comp["significant"] is False and comp["winner"] is None
    needed = samples_needed(0.9, 0.85)
    assert needed is not None
    assert comp["samples_needed_per_variant"] == needed
    assert comp["additional_samples_needed"] == needed - 100
    assert report["recommendation"] == (
        f"no significant difference yet (v1 90.0% vs v2 85.0%, {format_p(comp['p_value'])}): "
        f"~{needed - 100} more labels per version needed"
    )


def test_additional_samples_use_smaller_arm() -> None:
    report = build_report([variant("v1", labeled=300, correct=270), variant("v2", labeled=100, correct=85)])
    comp = report["comparison"]
    assert comp["additional_samples_needed"] == comp["samples_needed_per_variant"] - 100


def test_not_significant_despite_enough_labels() -> None:
    # The normal-approximation plan says 2 per arm suffice for a 100-point gap, but
    # Fisher's exact test on 3 vs 3 cannot reach p < 0.05: no label count is promised.
    report = build_report([variant("v1", labeled=3, correct=0), variant("v2", labeled=3, correct=3)])
    comp = report["comparison"]
    assert comp["method"] == "fisher-exact"
    assert comp["significant"] is False
    assert comp["additional_samples_needed"] == 0
    assert report["recommendation"] == (
        "no significant difference yet (v1 0.0% vs v2 100.0%, p = 0.100): keep collecting labels"
    )


def test_srm_recommendation_wins_over_everything() -> None:
    # A clear accuracy winner, but routing is broken: the verdict must not be trusted.
    report = build_report(
        [
            variant("v1", requests=600, labeled=200, correct=199),
            variant("v2", requests=400, labeled=200, correct=140),
        ]
    )
    assert report["comparison"]["significant"] is True
    assert report["srm"]["mismatch"] is True
    assert report["recommendation"] == (
        "sample ratio mismatch (p < 0.001): traffic does not match the configured weights "
        "(v1 is over-served: 60.0% of requests vs 50.0% expected), do not trust this comparison"
    )


def test_srm_without_labels_still_reported_first() -> None:
    report = build_report([variant("v1", requests=400), variant("v2", requests=600)])
    assert report["recommendation"].startswith("sample ratio mismatch (p < 0.001)")
    assert "v2 is over-served" in report["recommendation"]


def test_weight_zero_variant_without_traffic_is_left_out() -> None:
    report = build_report(
        [
            variant("v1", labeled=100, correct=90),
            variant("v2", labeled=100, correct=85),
            variant("v0", weight=0, share=0.0, requests=0),
        ]
    )
    assert "v0" in report["variants"]  # listed, but not compared or SRM-tested
    assert [c["challenger"] for c in report["comparisons"]] == ["v2"]
    assert set(report["srm"]["observed_share"]) == {"v1", "v2"}
    assert report["srm"]["mismatch"] is False
    dumps_strict(report)


def test_weight_zero_variant_with_traffic_is_a_mismatch() -> None:
    report = build_report(
        [
            variant("v1", requests=500, labeled=100, correct=90),
            variant("v2", requests=500, labeled=100, correct=85),
            variant("v0", weight=0, share=0.0, requests=3, labeled=3, correct=3),
        ]
    )
    assert [c["challenger"] for c in report["comparisons"]] == ["v2", "v0"]
    assert report["srm"]["mismatch"] is True and report["srm"]["p_value"] == 0.0
    assert report["recommendation"] == (
        "sample ratio mismatch (p < 0.001): traffic does not match the configured weights "
        "(over-served: v0 gets 0.3% of requests vs 0.0% expected), do not trust this comparison"
    )
    dumps_strict(report)


def test_inactive_baseline_falls_back_to_first_active() -> None:
    report = build_report(
        [
            variant("v1", weight=0, share=0.0, requests=0),
            variant("v2", weight=100, share=1.0, labeled=10, correct=9),
        ],
        baseline="v1",
    )
    assert report["baseline"] == "v2"
    assert report["comparisons"] == [] and report["comparison"] is None
    assert report["srm"]["mismatch"] is False
    assert report["recommendation"] == "only v2 is serving traffic: nothing to compare"
    dumps_strict(report)


def test_no_active_variants() -> None:
    report = build_report([variant("v1", weight=0, share=0.0, requests=0)])
    assert report["baseline"] == "v1"
    assert report["comparison"] is None
    assert report["recommendation"] == "no version is serving traffic: nothing to compare"
    dumps_strict(report)


def test_latency_percentiles_from_the_histogram() -> None:
    report = build_report([variant("v1", latencies=(0.3, 0.3, 0.3, 3.0)), variant("v2")])
    assert report["variants"]["v1"]["latency_p50_ms"] == pytest.approx(0.25 + 0.25 * (2 / 3))  # in (0.25, 0.5]
    assert report["variants"]["v1"]["latency_p95_ms"] == pytest.approx(2.5 + 2.5 * 0.8)  # in (2.5, 5]
    assert report["variants"]["v2"]["latency_p50_ms"] is None
    dumps_strict(report)


@pytest.mark.parametrize(
    ("variants", "kwargs", "message"),
    [
        ([], {}, "at least one variant is required"),
        ([variant("v1"), variant("v1")], {}, "duplicate versions: ['v1', 'v1']"),
        ([variant("v1"), variant("v2")], {"baseline": "v9"}, "baseline 'v9' is not one of ['v1', 'v2']"),
        ([variant("v1", labeled=5, correct=6), variant("v2")], {}, "v1: correct must be in [0, labeled=5]"),
        ([variant("v1", requests=-1), variant("v2")], {}, "v1: weight, requests and labeled must be non-negative"),
        ([variant("v1"), variant("v2")], {"alpha": 1.5}, "alpha must be in (0, 1), got 1.5"),
        ([variant("v1"), variant("v2")], {"power": 0.0}, "power must be in (0, 1), got 0.0"),
        ([variant("v1"), variant("v2")], {"srm_threshold": 2.0}, "threshold must be in (0, 1), got 2.0"),
    ],
)
def test_build_report_rejects_invalid(variants: list[VariantData], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_report(variants, **kwargs)


def test_report_is_strict_json_for_all_edge_cases() -> None:
    cases = [
        [variant("v1", requests=0), variant("v2", requests=0)],
        [variant("v1", labeled=10, correct=10), variant("v2", labeled=10, correct=10)],
        [variant("v1", labeled=10, correct=0), variant("v2", labeled=10, correct=0)],
        [variant("v1", requests=0, weight=0, share=0.0)],
        [variant("v1", requests=10, weight=0, share=0.0), variant("v2", weight=100, share=1.0)],
    ]
    for variants in cases:
        report = build_report(variants)
        assert json.loads(dumps_strict(report)) == report


# --- render_text -------------------------------------------------------------


def test_render_text_full_report() -> None:
    report = build_report(
        [
            variant("v1", share=1 / 3, labeled=200, correct=180, latencies=(10.0, 20.0)),
            variant("v2", share=1 / 3, labeled=200, correct=170),
            variant("v3", share=1 / 3, labeled=0),
        ]
    )
    text = render_text(report)
    assert "baseline v1" in text
    for version in ("v1", "v2", "v3"):
        assert version in text
    assert "90.0%" in text and "10.0" in text  # accuracy and p50 latency
    assert "v3 vs v1: not enough labels" in text
    assert "SRM:" in text
    assert text.rstrip().endswith(f"Recommendation: {report['recommendation']}")


def test_render_text_edge_reports() -> None:
    for variants in (
        [variant("v1", requests=0), variant("v2", requests=0)],
        [variant("v1", weight=0, share=0.0, requests=0)],
        [
            variant("v1", requests=500),
            variant("v2", requests=500),
            variant("v0", weight=0, share=0.0, requests=2),
        ],
    ):
        report = build_report(variants)
        text = render_text(report)
        assert report["recommendation"] in text
    assert "MISMATCH" in text and "chi2 = inf" in text
