"""A/B experiment statistics: accuracy intervals, significance, power, SRM and the verdict.

Pure functions only (no Flask, no I/O, no database) so the verdict can be
recomputed and tested from plain counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from app.stats.formatting import format_p, pct
from app.stats.latency import quantile_ms
from app.stats.multiple_testing import holm_adjust
from app.stats.sequential import compare_sequential

# Fisher's exact test takes over from the z-test below this expected cell count
# (the usual rule of thumb for when the normal approximation breaks down).
MIN_EXPECTED_CELL = 5.0


@dataclass(frozen=True)
class VariantData:
    """Per-variant counts for one experiment period."""

    version: str
    weight: int
    expected_share: float
    requests: int
    labeled: int
    correct: int
    latency_histogram: Sequence[int] = ()
    """Predictions per bucket of ``app.stats.latency.LATENCY_BUCKETS`` (empty: no latency known)."""


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Return the Wilson score interval (without continuity correction) for successes/n."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    z2n = z * z / n
    denom = 1.0 + z2n
    centre = (p + z2n / 2.0) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    # At 0/n and n/n the bound is exactly 0 or 1 in theory; floating point can
    # land a hair outside, which would look like a bug in a report.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def compare_proportions(correct_a: int, n_a: int, correct_b: int, n_b: int) -> dict[str, Any]:
    """Two-sided test of accuracy a vs b: pooled z-test, or Fisher's exact test for small counts."""
    for name, correct, n in (("a", correct_a, n_a), ("b", correct_b, n_b)):
        if n <= 0:
            raise ValueError(f"n_{name} must be positive, got {n}")
        if not 0 <= correct <= n:
            raise ValueError(f"correct_{name} must be in [0, {n}], got {correct}")
    total = n_a + n_b
    successes = correct_a + correct_b
    failures = total - successes
    min_expected = min(n_a, n_b) * min(successes, failures) / total
    diff = correct_b / n_b - correct_a / n_a
    if min_expected < MIN_EXPECTED_CELL:
        table = np.array([[correct_a, n_a - correct_a], [correct_b, n_b - correct_b]], dtype=np.int64)
        p_value = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
        method = "fisher-exact"
    else:
        pooled = successes / total
        se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
        # sf() rather than 1 - cdf() keeps tiny p-values from rounding to 0.
        p_value = 1.0 if se == 0.0 else float(2.0 * stats.norm.sf(abs(diff) / se))
        method = "z-test"
    return {"method": method, "p_value": min(1.0, p_value), "accuracy_diff": diff}


def samples_needed(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Return labelled samples per variant for a two-sided z-test to detect p_b - p_a at this power."""
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if p_a == p_b:
        return None
    z_alpha = float(stats.norm.ppf(1.0 - alpha / 2.0))
    z_beta = float(stats.norm.ppf(power))
    p_bar = (p_a + p_b) / 2.0
    # Pooled variance under H0, unpooled under H1 (Fleiss' formula without continuity correction).
    numerator = z_alpha * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_beta * math.sqrt(
        p_a * (1.0 - p_a) + p_b * (1.0 - p_b)
    )
    # Power below 50% makes z_beta negative; a negative sum would square into nonsense.
    n = max(0.0, numerator) ** 2 / (p_a - p_b) ** 2
    return max(1, math.ceil(n))


def srm_test(
    observed: Mapping[str, int],
    expected_shares: Mapping[str, float],
    threshold: float = 0.001,
) -> dict[str, Any]:
    """Chi-square goodness-of-fit of observed request counts against the expected traffic shares."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    versions = list(observed) + [v for v in expected_shares if v not in observed]
    counts = {v: int(observed.get(v, 0)) for v in versions}
    raw_shares = {v: float(expected_shares.get(v, 0.0)) for v in versions}
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"observed counts must be non-negative: {counts}")
    if any(not math.isfinite(s) or s < 0 for s in raw_shares.values()):
        raise ValueError(f"expected shares must be finite and non-negative: {raw_shares}")

    total = sum(counts.values())
    share_sum = sum(raw_shares.values())
    # Normalise so weights or slightly-off float shares still give a valid null.
    shares = {v: s / share_sum for v, s in raw_shares.items()} if share_sum > 0 else raw_shares
    result: dict[str, Any] = {
        "statistic": 0.0,
        "p_value": 1.0,
        "mismatch": False,
        "threshold": threshold,
        "p_value_text": format_p(1.0),
        "observed_share": {v: (c / total if total else None) for v, c in counts.items()},
        "expected_share": shares,
    }
    if total == 0:
        return result
    if any(counts[v] > 0 and shares[v] == 0.0 for v in versions):
        # Traffic to a variant that should get none is a routing bug, not noise;
        # the chi-square statistic would be infinite, which JSON cannot carry.
        result.update(statistic=None, p_value=0.0, p_value_text=format_p(0.0), mismatch=True)
        return result
    tested = [v for v in versions if shares[v] > 0.0]
    if len(tested) < 2:
        # A single category always matches its expectation exactly.
        return result
    f_obs = np.array([counts[v] for v in tested], dtype=float)
    f_exp = np.array([shares[v] * total for v in tested], dtype=float)
    # Rescale to kill float drift; chisquare rejects sums that disagree beyond 1e-8.
    f_exp *= total / f_exp.sum()
    chi = stats.chisquare(f_obs, f_exp)
    p_value = float(chi.pvalue)
    result.update(statistic=float(chi.statistic), p_value=p_value, mismatch=bool(p_value < threshold))
    result["p_value_text"] = format_p(p_value, threshold)
    return result


SRM_NOT_APPLICABLE = (
    "not applicable: a bandit moves traffic toward the better version by design, so shares do not follow fixed "
    "weights; see each version's share over time"
)


def shadow_summary(
    requests: int, agreed: int, labeled: int, correct: int, served_correct: int, discordant: int, alpha: float = 0.05
) -> dict[str, Any]:
    """A shadow version judged on the rows it scored beside the served versions.

    Agreement is over every scored row; accuracy, the served versions' accuracy and their difference are over
    the same labelled rows, so the comparison is paired: McNemar's exact test (a binomial test on the rows
    where exactly one of the two was right; McNemar 1947) says whether the difference is more than chance.
    """
    if not 0 <= agreed <= requests or not 0 <= correct <= labeled or not 0 <= served_correct <= labeled:
        raise ValueError("shadow counts must satisfy 0 <= agreed <= requests and 0 <= correct <= labeled")
    if not abs(correct - served_correct) <= discordant <= labeled or (discordant + correct - served_correct) % 2:
        raise ValueError("discordant rows must account for the difference between correct and served_correct")
    shadow_only = (discordant + correct - served_correct) // 2  # right where the served version was wrong
    p_value = float(stats.binomtest(shadow_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "requests": requests,
        "agreement": agreed / requests if requests else None,
        "labeled": labeled,
        "correct": correct,
        "accuracy": correct / labeled if labeled else None,
        "accuracy_ci95": list(wilson_interval(correct, labeled)) if labeled else None,
        "served_accuracy": served_correct / labeled if labeled else None,
        "accuracy_diff": (correct - served_correct) / labeled if labeled else None,
        "discordant": discordant,
        "p_value": p_value,
        "p_value_text": format_p(p_value, alpha),
        "method": "mcnemar-exact",
        "significant": bool(p_value < alpha),
    }


def _validate(variant: VariantData) -> None:
    """Raise ValueError for counts that cannot come from a real period."""
    if variant.weight < 0 or variant.requests < 0 or variant.labeled < 0:
        raise ValueError(f"{variant.version}: weight, requests and labeled must be non-negative")
    if not 0 <= variant.correct <= variant.labeled:
        raise ValueError(f"{variant.version}: correct must be in [0, labeled={variant.labeled}]")
    if not math.isfinite(variant.expected_share) or variant.expected_share < 0:
        raise ValueError(f"{variant.version}: expected_share must be finite and non-negative")


def _is_active(variant: VariantData) -> bool:
    """Whether a variant takes part in comparisons and the SRM check."""
    return variant.weight > 0 or variant.requests > 0


def _summarise(variant: VariantData, total_requests: int) -> dict[str, Any]:
    """Return the per-variant block of the report."""
    accuracy = variant.correct / variant.labeled if variant.labeled else None
    ci = list(wilson_interval(variant.correct, variant.labeled)) if variant.labeled else None
    return {
        "weight": int(variant.weight),
        "expected_share": float(variant.expected_share),
        "requests": int(variant.requests),
        "observed_share": variant.requests / total_requests if total_requests else None,
        "labeled": int(variant.labeled),
        "correct": int(variant.correct),
        "accuracy": accuracy,
        "accuracy_ci95": ci,
        "latency_p50_ms": quantile_ms(variant.latency_histogram, 0.50),
        "latency_p95_ms": quantile_ms(variant.latency_histogram, 0.95),
    }


def _empty_comparison(baseline: str, challenger: str) -> dict[str, Any]:
    """Return a comparison whose statistics are undefined (a side has no labels)."""
    return {
        "baseline": baseline,
        "challenger": challenger,
        "accuracy_diff": None,
        "p_value": None,
        "p_value_adjusted": None,
        "p_value_text": None,
        "significant": False,
        "method": None,
        "samples_needed_per_variant": None,
        "additional_samples_needed": None,
        "winner": None,
        "sequential": None,
    }


def build_report(
    variants: Sequence[VariantData],
    *,
    baseline: str | None = None,
    alpha: float = 0.05,
    srm_threshold: float = 0.001,
    power: float = 0.8,
    srm_applies: bool = True,
) -> dict[str, Any]:
    """Build the JSON-serialisable A/B report: per-variant stats, comparisons, SRM and a recommendation.

    ``srm_applies`` is False when traffic follows a bandit rather than fixed weights: the check is reported as
    not applicable instead of crying mismatch.
    """
    _check_report_inputs(variants, baseline, alpha, power)
    active = [v for v in variants if _is_active(v)]
    active_versions = [v.version for v in active]
    # An inactive baseline has no data to compare against, so fall back to the
    # first active version rather than emit comparisons that can never resolve.
    if baseline is None or baseline not in active_versions:
        baseline = active_versions[0] if active_versions else variants[0].version

    total_requests = sum(v.requests for v in variants)
    summaries = {v.version: _summarise(v, total_requests) for v in variants}
    base = next(v for v in variants if v.version == baseline)
    comparisons = _comparisons(base, [v for v in active if v.version != baseline], alpha, power)
    n_tests = _holm_decide(comparisons, alpha)
    srm = srm_test(
        {v.version: v.requests for v in active},
        {v.version: v.expected_share for v in active},
        threshold=srm_threshold,
    )
    srm["applicable"] = srm_applies
    if not srm_applies:
        srm.update(mismatch=False, note=SRM_NOT_APPLICABLE)
    report: dict[str, Any] = {
        "baseline": baseline,
        "alpha": alpha,
        "variants": summaries,
        "comparisons": comparisons,
        "comparison": _headline(comparisons),
        "srm": srm,
    }
    report["recommendation"] = _recommend(report, active_versions, n_tests)
    return report


def _check_report_inputs(variants: Sequence[VariantData], baseline: str | None, alpha: float, power: float) -> None:
    """Raise ValueError for arguments build_report cannot judge."""
    if not variants:
        raise ValueError("at least one variant is required")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    versions = [v.version for v in variants]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate versions: {versions}")
    if baseline is not None and baseline not in versions:
        raise ValueError(f"baseline {baseline!r} is not one of {versions}")
    for v in variants:
        _validate(v)


def _comparisons(
    base: VariantData, challengers: Sequence[VariantData], alpha: float, power: float
) -> list[dict[str, Any]]:
    """Each challenger against the baseline: raw p-value and labels still needed, where both sides have labels."""
    tested = {c.version for c in challengers if base.labeled and c.labeled}
    # Size the power estimate at the Bonferroni level: it is conservative for Holm
    # and keeps "more labels needed" consistent with the corrected decision.
    alpha_per_test = alpha / max(1, len(tested))
    comparisons: list[dict[str, Any]] = []
    for challenger in challengers:
        comp = _empty_comparison(base.version, challenger.version)
        if challenger.version in tested:
            comp.update(_compare_pair(base, challenger, alpha_per_test, power))
        comparisons.append(comp)
    return comparisons


def _compare_pair(base: VariantData, challenger: VariantData, alpha: float, power: float) -> dict[str, Any]:
    """The test of one challenger against the baseline, and the labels per variant its gap needs at ``alpha``."""
    result = compare_proportions(base.correct, base.labeled, challenger.correct, challenger.labeled)
    needed = samples_needed(base.correct / base.labeled, challenger.correct / challenger.labeled, alpha, power)
    # The always-valid verdict, at the same per-test level: valid however often the report is read.
    sequential = compare_sequential(base.correct, base.labeled, challenger.correct, challenger.labeled, alpha=alpha)
    sequential["p_value_text"] = format_p(sequential["p_value"], alpha)
    sequential["significant"] = bool(sequential["p_value"] < alpha)
    return {
        "sequential": sequential,
        "accuracy_diff": result["accuracy_diff"],
        "p_value": result["p_value"],
        "method": result["method"],
        "samples_needed_per_variant": needed,
        "additional_samples_needed": (
            None if needed is None else max(0, needed - min(base.labeled, challenger.labeled))
        ),
    }


def _holm_decide(comparisons: list[dict[str, Any]], alpha: float) -> int:
    """Holm-adjust the comparisons that have a p-value and decide each; returns how many were tested."""
    with_p = [c for c in comparisons if c["p_value"] is not None]
    adjusted_p: list[float] = holm_adjust([c["p_value"] for c in with_p]).tolist()
    for comp, adjusted in zip(with_p, adjusted_p, strict=True):
        comp["p_value_adjusted"] = adjusted
        comp["p_value_text"] = format_p(adjusted, alpha)
        comp["significant"] = bool(adjusted < alpha)
        if comp["significant"]:
            comp["winner"] = comp["challenger"] if comp["accuracy_diff"] > 0 else comp["baseline"]
    return len(with_p)


def _headline(comparisons: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The comparison with the smallest adjusted p-value (a copy), or None when there is none."""
    if not comparisons:
        return None
    # Undefined p-values sort last; ties keep input order. Copied so that a
    # caller editing one block of the report does not silently edit the other.
    return dict(min(comparisons, key=lambda c: (c["p_value_adjusted"] is None, c["p_value_adjusted"] or 0.0)))


def _over_served(srm: dict[str, Any]) -> str:
    """Name the variant(s) getting more traffic than configured, with observed vs expected shares."""
    observed: dict[str, float | None] = srm["observed_share"]
    expected: dict[str, float] = srm["expected_share"]
    shares = {v: s for v, s in observed.items() if s is not None}
    unexpected = [v for v, s in shares.items() if s > 0 and expected.get(v, 0.0) == 0.0]
    if unexpected:
        names = " and ".join(f"{v} gets {pct(shares[v])} of requests vs 0.0% expected" for v in unexpected)
        return f"over-served: {names}"
    worst = max(shares, key=lambda v: shares[v] - expected.get(v, 0.0))
    return f"{worst} is over-served: {pct(shares[worst])} of requests vs {pct(expected[worst])} expected"


def _recommend(report: dict[str, Any], active_versions: list[str], n_tests: int) -> str:
    """Return the plain-language recommendation, applying the priorities in order."""
    srm = report["srm"]
    variants = report["variants"]
    alpha = report["alpha"]
    if srm["mismatch"]:
        return (
            f"sample ratio mismatch ({srm['p_value_text']}): traffic does not match the configured "
            f"weights ({_over_served(srm)}), do not trust this comparison"
        )
    if not active_versions:
        return "no version is serving traffic: nothing to compare"
    if len(active_versions) < 2:
        return f"only {active_versions[0]} is serving traffic: nothing to compare"
    unlabeled = [v for v in active_versions if variants[v]["labeled"] == 0]
    if len(unlabeled) == len(active_versions):
        return "no labelled predictions yet: send feedback to compare versions"
    if unlabeled:
        return f"no labelled predictions yet for {', '.join(unlabeled)}: send feedback to compare versions"

    comp = report["comparison"]
    base, chal = comp["baseline"], comp["challenger"]
    acc_base, acc_chal = variants[base]["accuracy"], variants[chal]["accuracy"]
    p_label = format_p(comp["p_value_adjusted"], alpha)
    if n_tests > 1:
        p_label = f"Holm-adjusted {p_label}"
    if comp["significant"]:
        winner = comp["winner"]
        loser = chal if winner == base else base
        return (
            f"{winner} is more accurate ({pct(variants[winner]['accuracy'])} vs "
            f"{pct(variants[loser]['accuracy'])}, {p_label}): shift traffic to {winner}"
        )
    if comp["additional_samples_needed"] is None:
        n_base, n_chal = variants[base]["labeled"], variants[chal]["labeled"]
        counts = f"{n_base} labels each" if n_base == n_chal else f"{n_base} and {n_chal} labels"
        return (
            f"no difference observed so far ({base} {pct(acc_base)} vs {chal} {pct(acc_chal)}, "
            f"{counts}): keep collecting labels"
        )
    detail = f"{base} {pct(acc_base)} vs {chal} {pct(acc_chal)}, {p_label}"
    more = comp["additional_samples_needed"]
    if more == 0:
        # Enough labels for the observed gap yet not significant: the gap is
        # probably smaller than it looks, and no fixed count will settle it.
        return f"no significant difference yet ({detail}): keep collecting labels"
    return f"no significant difference yet ({detail}): ~{more} more labels per version needed"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """Format an optional number, showing '-' when undefined."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render_text(report: dict[str, Any]) -> str:
    """Render a build_report() result as a plain-text terminal report."""
    lines = [f"A/B report (baseline {report['baseline']}, alpha {report['alpha']:g})", ""]
    lines += _variant_table(report["variants"])
    lines.append("")
    lines += _comparison_lines(report["comparisons"], report["alpha"])
    lines += _shadow_lines(report.get("shadow") or {})
    lines.append(_srm_line(report["srm"]))
    lines.extend(["", f"Recommendation: {report['recommendation']}"])
    return "\n".join(lines) + "\n"


_TABLE_HEADER = [
    "version",
    "weight",
    "expected",
    "observed",
    "requests",
    "labeled",
    "accuracy",
    "95% CI",
    "p50 ms",
    "p95 ms",
]


def _variant_table(variants: dict[str, dict[str, Any]]) -> list[str]:
    """The per-variant table, one line per version under a header, columns padded to their widest cell."""
    rows = [_TABLE_HEADER] + [_variant_cells(version, s) for version, s in variants.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_HEADER))]
    lines = []
    for row in rows:
        # Version names read best left-aligned, numbers right-aligned.
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _variant_cells(version: str, s: dict[str, Any]) -> list[str]:
    """One table row: a variant's summary as text cells in header order."""
    ci = s["accuracy_ci95"]
    return [
        version,
        str(s["weight"]),
        _fmt(100.0 * s["expected_share"], ".1f", "%"),
        _fmt(None if s["observed_share"] is None else 100.0 * s["observed_share"], ".1f", "%"),
        str(s["requests"]),
        str(s["labeled"]),
        _fmt(None if s["accuracy"] is None else 100.0 * s["accuracy"], ".1f", "%"),
        "-" if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]",
        _fmt(s["latency_p50_ms"], ".1f"),
        _fmt(s["latency_p95_ms"], ".1f"),
    ]


def _comparison_lines(comparisons: list[dict[str, Any]], alpha: float) -> list[str]:
    """The comparisons block: a heading, then one line per challenger."""
    if not comparisons:
        return ["Comparisons: none (fewer than two versions serving traffic)"]
    n_tests = sum(c["p_value"] is not None for c in comparisons)
    correction = " (Holm-adjusted)" if n_tests > 1 else ""
    return [f"Comparisons{correction}:"] + [_comparison_line(c, alpha) for c in comparisons]


def _comparison_line(c: dict[str, Any], alpha: float) -> str:
    """One challenger against the baseline: the difference, raw and adjusted p-values, and the verdict."""
    head = f"  {c['challenger']} vs {c['baseline']}: "
    if c["p_value"] is None:
        return head + "not enough labels"
    verdict = f"significant, winner {c['winner']}" if c["significant"] else "not significant"
    more = c["additional_samples_needed"]
    extra = "" if more is None or c["significant"] else f", ~{more} more labels per version needed"
    adjusted = format_p(c["p_value_adjusted"], alpha)
    line = (
        head
        + f"diff {100.0 * c['accuracy_diff']:+.1f} pp, {format_p(c['p_value'])} "
        + f"(adjusted {adjusted}, {c['method']}), {verdict}{extra}"
    )
    seq = c.get("sequential")
    if not seq:
        return line
    lo, hi = seq["confidence_sequence"]
    level = 100.0 * (1.0 - seq["tuning"]["alpha"])
    seq_verdict = "significant" if seq["significant"] else "not significant"
    return (
        line
        + f"\n    always valid (safe to peek): {seq['p_value_text']}, {level:g}% confidence sequence "
        + f"[{100.0 * lo:+.1f}, {100.0 * hi:+.1f}] pp, {seq_verdict}"
    )


def _shadow_lines(shadow: dict[str, dict[str, Any]]) -> list[str]:
    """The shadow versions, each judged against what was served on the same rows."""
    if not shadow:
        return []
    lines = ["Shadow versions (scored beside the served ones, never returned):"]
    for version, s in shadow.items():
        agreement = _fmt(None if s["agreement"] is None else 100.0 * s["agreement"], ".1f", "%")
        head = f"  {version}: {s['requests']} rows, agrees with served {agreement}"
        if not s["labeled"]:
            lines.append(head + ", no labelled rows yet")
            continue
        lines.append(
            head + f", accuracy {pct(s['accuracy'])} vs served {pct(s['served_accuracy'])} on the same "
            f"{s['labeled']} labelled rows ({100.0 * s['accuracy_diff']:+.1f} pp, {s['p_value_text']}, McNemar)"
        )
    return lines


def _srm_line(srm: dict[str, Any]) -> str:
    """The sample-ratio-mismatch check in one line."""
    if not srm.get("applicable", True):
        return f"SRM: {srm['note']}"
    status = "MISMATCH" if srm["mismatch"] else "ok"
    # statistic is None only when a 0%-share variant got traffic, i.e. chi-square is infinite.
    chi2 = "inf" if srm["statistic"] is None else f"{srm['statistic']:.2f}"
    return f"SRM: chi2 = {chi2}, {srm['p_value_text']}, {status} (threshold {srm['threshold']:g})"
