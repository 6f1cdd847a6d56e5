"""An always-valid verdict: a confidence sequence and p-value that stay valid however often they are read.

A fixed-horizon p-value is valid once, at a sample size chosen in advance; checked after every batch of labels it
crosses alpha far more often than alpha when the versions are equal. This module implements the asymptotic
confidence sequence of Waudby-Smith, Ramdas et al., "Time-uniform central limit theory and asymptotic confidence
sequences" (Annals of Statistics, 2024; arXiv:2103.06476), Theorem 2.2 with the Gaussian mixture boundary, as
GrowthBook documents for its sequential testing. For an estimate with per-observation standard deviation
``sigma`` after ``n`` observations, the (1 - alpha) sequence is

    estimate +/- sigma * sqrt( 2 (n rho^2 + 1) / (n^2 rho^2) * log( sqrt(n rho^2 + 1) / alpha ) )

and it covers the true value at every n at once with probability >= 1 - alpha (asymptotically). ``rho`` tunes
where it is tightest: ``rho_for`` picks the value that minimises the width at ``n_star`` observations (the
paper's Section 2.3 rule). The always-valid p-value is the smallest alpha whose sequence excludes 0,

    p = min(1, sqrt(n rho^2 + 1) * exp( -z^2 n rho^2 / (2 (n rho^2 + 1)) )),   z = estimate / standard error,

which is the reciprocal of the normal-mixture likelihood ratio of Johari et al.'s mSPRT ("Always Valid
Inference", Operations Research 2022) with the variance estimated: a reader who stops the first time p < alpha
is wrong about equal versions at most alpha of the time, whenever they look.

Here the estimate is the accuracy difference of two versions, n their labels together, and sigma the
per-label standard deviation implied by the unpooled standard error (each accuracy shrunk by half a label
towards 1/2, so a perfect or a hopeless version does not collapse the variance to 0). ``proportion_sequence``
is the same boundary for one version's accuracy over time, inverted as the Wilson interval is.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_N_STAR = 1000
"""Labels (both versions together) at which the confidence sequence is tuned to be tightest."""

METHOD = "asymptotic confidence sequence (Waudby-Smith et al. 2024), normal mixture"


def rho_for(n_star: int, alpha: float) -> float:
    """The mixture parameter that makes the (1 - alpha) sequence tightest at ``n_star`` observations."""
    if n_star < 1:
        raise ValueError(f"n_star must be at least 1, got {n_star}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / n_star)


def half_width(sigma: float, n: int, alpha: float, rho: float) -> float:
    """Half the width of the (1 - alpha) confidence sequence after ``n`` observations of spread ``sigma``."""
    v = n * rho * rho
    return sigma * math.sqrt(2.0 * (v + 1.0) / (n * n * rho * rho) * math.log(math.sqrt(v + 1.0) / alpha))


def always_valid_p(z: float, n: int, rho: float) -> float:
    """The smallest alpha whose sequence excludes 0, for a z statistic after ``n`` observations."""
    v = n * rho * rho
    log_p = 0.5 * math.log(v + 1.0) - z * z * v / (2.0 * (v + 1.0))
    return 1.0 if log_p >= 0.0 else math.exp(log_p)


def compare_sequential(
    correct_a: int,
    n_a: int,
    correct_b: int,
    n_b: int,
    *,
    alpha: float = 0.05,
    n_star: int = DEFAULT_N_STAR,
) -> dict[str, Any]:
    """Always-valid p-value and (1 - alpha) confidence sequence for accuracy b - accuracy a."""
    for name, correct, n in (("a", correct_a, n_a), ("b", correct_b, n_b)):
        if n <= 0:
            raise ValueError(f"n_{name} must be positive, got {n}")
        if not 0 <= correct <= n:
            raise ValueError(f"correct_{name} must be in [0, {n}], got {correct}")
    rho = rho_for(n_star, alpha)
    diff = correct_b / n_b - correct_a / n_a
    p_a, p_b = (correct_a + 0.5) / (n_a + 1.0), (correct_b + 0.5) / (n_b + 1.0)
    se = math.sqrt(p_a * (1.0 - p_a) / n_a + p_b * (1.0 - p_b) / n_b)
    n = n_a + n_b
    half = half_width(se * math.sqrt(n), n, alpha, rho)
    return {
        "p_value": always_valid_p(diff / se, n, rho),
        "confidence_sequence": [diff - half, diff + half],
        "method": METHOD,
        "tuning": {"n_star": n_star, "rho": rho, "alpha": alpha},
    }


def proportion_sequence(
    correct: int, n: int, *, alpha: float = 0.05, n_star: int = DEFAULT_N_STAR
) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence for one accuracy after ``n`` labels, ``correct`` of them right.

    Valid at every n at once, so a plot of it over time may be read anywhere. It is the set of accuracies p
    that the boundary does not reject, with sigma = sqrt(p (1 - p)) taken at that p rather than estimated:
    the Wilson interval with the boundary's width in place of 1.96 / sqrt(n). Plugging in the estimate
    (even shrunk by half a label) misses too often near 100%, where these models live: after 37 right
    answers out of 37 it excluded a true 90%.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be in [0, {n}], got {correct}")
    k2 = half_width(1.0, n, alpha, rho_for(n_star, alpha)) ** 2
    p = correct / n
    centre = (p + k2 / 2.0) / (1.0 + k2)
    half = math.sqrt(k2 * (p * (1.0 - p) + k2 / 4.0)) / (1.0 + k2)
    # At 0/n and n/n the bound is exactly 0 or 1; floating point may land a hair outside.
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return lo, hi
