"""Data drift: compare the last served rows with the training reference.

Pure statistics; no Flask and no I/O, so it is cheap enough to run on every
``/metrics`` scrape (about a millisecond for 120x4 reference rows against a
100x4 window).

Decision
    Per feature, a two-sample Cramér–von Mises test compares the current
    window with the reference column: ``T = n*m/N**2 * sum_z (F_ref(z) -
    F_cur(z))**2`` over all N pooled values z, standardised with its exact
    mean and variance (Anderson 1962) and referred to the limiting
    distribution (the same as ``scipy.stats.cramervonmises_2samp(...,
    method="asymptotic")`` for data without ties). The ECDFs count ties as
    ties, so data on a 0.1 cm grid stays calibrated (scipy's mid-rank formula
    over-rejects heavily there for windows of 10-30 rows). The raw p-values are
    Holm-adjusted across features (family-wise error <= alpha). Let ``p*`` be
    the smallest adjusted p-value (for Holm it equals Bonferroni's
    ``min(1, m * min p)``). Drift is detected iff ``p* <= alpha``
    (default ``alpha = 0.05``); a feature is ``drifted`` iff its own adjusted
    p-value is ``<= alpha``.

Score
    ``drift_score = min(1, threshold * ln(p*) / ln(alpha))`` with
    ``threshold`` the DRIFT_THRESHOLD setting (the seed's 0.3), so ``p* = 1`` gives 0, ``p* = alpha`` gives exactly
    ``threshold`` and the score saturates at 1 once ``p* <= alpha ** (1 / threshold)``
    (about 4.6e-5 for 0.3). The decision is taken on ``p*`` and the score is clamped
    to the matching side of the threshold, so ``drift_score >= threshold``
    always equals ``drift_detected``.

Descriptive extras per feature (not part of the decision)
    ``psi``: population stability index over ``bins`` (10) bins whose edges
    are the reference quantiles, each bin fraction smoothed with 1e-4 and
    renormalised: ``sum((c - r) * ln(c / r))``.
    ``mean_shift_sd``: ``(mean(current) - mean(reference)) / sd(reference)``,
    signed; if the reference column is constant, the pooled SD of both
    samples is used instead, and 0 if that is also zero.

Resolution: before anything is computed, each current column is rounded to
the decimal resolution of its reference column (0.1 cm for Iris; none if
the reference has more than 6 decimals). Finer detail cannot be compared
with the reference, and unrounded values against a rounded reference would
otherwise look shifted by half a grid step.

Degenerate cases: a feature that is constant across both samples gets
statistic 0 and p-value 1; windows with fewer than ``min_samples`` rows give
status ``INSUFFICIENT_DATA`` with score 0 and no features. Every value in
the result is a plain, finite Python ``float``/``int``/``bool``/``str``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from app.stats.multiple_testing import holm_adjust

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SAMPLES = 30
PSI_BINS = 10
PSI_EPSILON = 1e-4
TEST_NAME = "cramer-von-mises"
METHOD = "cramer-von-mises 2-sample per feature, holm-adjusted"
_CVM_MAX_TERMS = 100
_MAX_GRID_DECIMALS = 6

STATUS_OK = "OK"
STATUS_WARNING = "WARNING"
STATUS_INSUFFICIENT = "INSUFFICIENT_DATA"


def detect_drift(
    reference: npt.NDArray[np.float64],
    current: npt.NDArray[np.float64],
    feature_names: Sequence[str],
    *,
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> dict[str, Any]:
    """Test every feature of ``current`` against ``reference`` and summarise as a drift score."""
    _check_levels(alpha, threshold)
    names = _check_names(feature_names)
    ref = _as_matrix(reference, len(names), "reference")
    cur = _as_matrix(current, len(names), "current")
    if ref.shape[0] < 2:
        raise ValueError("reference needs at least 2 rows")
    # The two-sample test itself needs two rows, whatever min_samples says.
    if cur.shape[0] < max(min_samples, 2):
        return _result(0.0, False, STATUS_INSUFFICIENT, cur.shape[0], threshold, alpha, {})

    cur = match_resolution(ref, cur)
    statistic, p_raw = _cvm_columns(ref, cur)
    p_adjusted = holm_adjust(p_raw)
    p_star = float(p_adjusted.min())
    detected = p_star <= alpha
    score = drift_score_from_p(p_star, threshold=threshold, alpha=alpha)
    features = {
        name: _feature_summary(ref[:, j], cur[:, j], statistic[j], p_raw[j], p_adjusted[j], alpha)
        for j, name in enumerate(names)
    }
    status = STATUS_WARNING if detected else STATUS_OK
    return _result(score, detected, status, cur.shape[0], threshold, alpha, features)


def drift_score_from_p(p_adjusted_min: float, *, threshold: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Map the smallest adjusted p-value to [0, 1] so that score >= threshold iff p <= alpha."""
    _check_levels(alpha, threshold)
    p = float(p_adjusted_min)
    if math.isnan(p):
        raise ValueError("p-value is NaN")
    p = min(max(p, 0.0), 1.0)
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0  # ln(1) = 0 would otherwise give -0.0
    raw = min(1.0, threshold * math.log(p) / math.log(alpha))
    # Rounding in log/divide can land a hair on the wrong side of the
    # threshold right at p == alpha; the p-value decision is authoritative.
    if p <= alpha:
        return max(raw, threshold)
    return min(raw, math.nextafter(threshold, 0.0))


def psi(reference_col: npt.NDArray[np.float64], current_col: npt.NDArray[np.float64], bins: int = PSI_BINS) -> float:
    """Population stability index of ``current_col`` over reference-quantile bins."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    ref = _as_column(reference_col, "reference_col")
    cur = _as_column(current_col, "current_col")
    # Tied reference values (e.g. data on a 0.1 grid) repeat quantiles; a
    # repeated edge would only create an always-empty bin.
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_frac = _bin_fractions(ref, edges)
    cur_frac = _bin_fractions(cur, edges)
    return float(np.sum((cur_frac - ref_frac) * np.log(cur_frac / ref_frac)))


def mean_shift_sd(reference_col: npt.NDArray[np.float64], current_col: npt.NDArray[np.float64]) -> float:
    """Signed difference of means in units of the reference standard deviation."""
    ref = _as_column(reference_col, "reference_col")
    cur = _as_column(current_col, "current_col")
    diff = float(cur.mean() - ref.mean())
    scale = _spread(ref)
    if scale == 0.0:
        # A constant reference has no SD to measure in; the pooled SD keeps
        # the number finite (and is 0 only when both columns are one value).
        scale = _spread(np.concatenate([ref, cur]))
    return diff / scale if scale > 0.0 else 0.0


def match_resolution(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Round each current column to the decimal resolution its reference column was recorded at."""
    # Training rows recorded to 0.1 cm tie at 5.1 while unrounded serving
    # values spread over 5.05-5.15; the right-continuous ECDF then reads the
    # window as shifted up by half a grid step (0.1 SD for sepal width).
    rounded = np.array(current, dtype=float, copy=True)
    for j in range(reference.shape[1]):
        decimals = _grid_decimals(reference[:, j])
        if decimals is not None:
            rounded[:, j] = np.round(rounded[:, j], decimals)
    return rounded


def _grid_decimals(column: npt.NDArray[np.float64]) -> int | None:
    """Fewest decimals (0-6) that represent every value of ``column``, or None if it is finer."""
    for decimals in range(_MAX_GRID_DECIMALS + 1):
        scaled = column * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return decimals
    return None


def _cvm_columns(
    ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Two-sample Cramér–von Mises statistic and asymptotic p-value for every column."""
    n, m = ref.shape[0], cur.shape[0]
    statistic = np.array([_cvm_statistic(ref[:, j], cur[:, j]) for j in range(ref.shape[1])])
    # Standardise with the finite-sample mean and variance of the statistic
    # (Anderson 1962, as scipy does), then use the limiting distribution.
    total, product = n + m, n * m
    mean = (1 + 1 / total) / 6
    var = (total + 1) * (4 * product * total - 3 * (n**2 + m**2) - 2 * product)
    var /= 45 * total**2 * 4 * product
    standardised = 1 / 6 + (statistic - mean) / math.sqrt(45 * var)
    return statistic, _cvm_limit_sf(standardised)


def _cvm_statistic(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """T = nm/N^2 * sum over the pooled sample of (F_x - F_y)^2, with the ECDFs counting ties."""
    # The ECDF form instead of scipy's mid-rank formula: with tied values
    # (Iris is on a 0.1 cm grid) the mid-rank version inflates T; for 10-30
    # rows drawn from the reference itself it gives p <= 0.05 in 15-100 %
    # of windows for the width features.
    x_sorted, y_sorted = np.sort(x), np.sort(y)
    pooled = np.concatenate([x_sorted, y_sorted])
    f_x = np.searchsorted(x_sorted, pooled, side="right") / x.size
    f_y = np.searchsorted(y_sorted, pooled, side="right") / y.size
    return float(x.size * y.size / pooled.size**2 * np.sum((f_x - f_y) ** 2))


def _cvm_limit_sf(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Upper tail of the limiting Cramér–von Mises distribution (Csörgő & Faraway 1996, eq. 1.2)."""
    t = np.asarray(t, dtype=float)
    p = np.ones_like(t)
    # Below 0.003 the CDF is < 1e-18. Above 8 the true tail is < 1e-16,
    # under the ~1e-15 rounding floor of 1 - CDF, so report 0 outright.
    body = (t >= 0.003) & (t <= 8.0)
    p[t > 8.0] = 0.0
    if body.any():
        p[body] = np.clip(1.0 - _cvm_limit_cdf(t[body]), 0.0, 1.0)
    return p


def _cvm_limit_cdf(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """CDF of the limiting distribution as a Bessel-function series, summed to 1e-15."""
    total = np.zeros_like(t)
    for k in range(_CVM_MAX_TERMS):
        y = 4 * k + 1
        q = y * y / (16 * t)
        coefficient = math.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1)) / math.pi**1.5
        term = coefficient * math.sqrt(y) / np.sqrt(t) * np.exp(-q) * special.kv(0.25, q)
        total += term
        if np.all(term < 1e-15):
            break
    return total


def _feature_summary(
    ref_col: npt.NDArray[np.float64],
    cur_col: npt.NDArray[np.float64],
    statistic: float,
    p_raw: float,
    p_adj: float,
    alpha: float,
) -> dict[str, Any]:
    """The per-feature part of the result, as plain Python scalars."""
    return {
        "test": TEST_NAME,
        "statistic": float(statistic),
        "p_value": float(p_raw),
        "p_value_adjusted": float(p_adj),
        "psi": psi(ref_col, cur_col),
        "mean_shift_sd": mean_shift_sd(ref_col, cur_col),
        "drifted": bool(p_adj <= alpha),
    }


def _result(
    score: float,
    detected: bool,
    status: str,
    samples: int,
    threshold: float,
    alpha: float,
    features: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Assemble the public result dictionary."""
    return {
        "drift_score": float(score),
        "threshold": float(threshold),
        "drift_detected": bool(detected),
        "status": status,
        "samples": int(samples),
        "alpha": float(alpha),
        "method": METHOD,
        "features": features,
    }


def _bin_fractions(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Epsilon-smoothed, renormalised fraction of ``values`` in each bin."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    # An empty bin would make ln(c / r) infinite.
    smoothed = counts / values.size + PSI_EPSILON
    fractions: npt.NDArray[np.float64] = smoothed / smoothed.sum()
    return fractions


def _spread(values: npt.NDArray[np.float64]) -> float:
    """Sample SD, exactly 0.0 for a constant column (where float noise could give 1e-17)."""
    if values.size < 2 or np.ptp(values) == 0:
        return 0.0
    return float(values.std(ddof=1))


def _check_levels(alpha: float, threshold: float) -> None:
    """Reject an alpha or threshold for which the score mapping is undefined."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")


def _check_names(feature_names: Sequence[str]) -> list[str]:
    """Feature names as a list, rejecting duplicates that would collapse in the result."""
    names = [str(name) for name in feature_names]
    if not names:
        raise ValueError("feature_names is empty")
    if len(set(names)) != len(names):
        raise ValueError("feature_names contains duplicates")
    return names


def _as_matrix(values: npt.ArrayLike, n_features: int, label: str) -> npt.NDArray[np.float64]:
    """A finite float matrix with ``n_features`` columns (an empty input becomes 0 rows)."""
    matrix = np.asarray(values, dtype=float)
    if matrix.size == 0:
        return matrix.reshape(0, n_features)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise ValueError(f"{label} must have shape (rows, {n_features}), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{label} contains NaN or infinite values")
    return matrix


def _as_column(values: npt.ArrayLike, label: str) -> npt.NDArray[np.float64]:
    """A non-empty, finite 1-D float array."""
    column = np.asarray(values, dtype=float).ravel()
    if column.size == 0:
        raise ValueError(f"{label} is empty")
    if not np.isfinite(column).all():
        raise ValueError(f"{label} contains NaN or infinite values")
    return column
