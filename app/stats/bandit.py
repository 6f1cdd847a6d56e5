"""Thompson-sampling routing: traffic shares from each version's labelled counts. Pure: numpy only, no I/O.

Thompson sampling (W. R. Thompson, "On the likelihood that one unknown probability exceeds another in view of the
evidence of two samples", Biometrika 25, 1933) serves each request from the version whose accuracy, drawn from its
posterior, is highest. Chapelle & Li, "An Empirical Evaluation of Thompson Sampling" (NeurIPS 2011), found it as
good as or better than the UCB-style policies on regret, and robust when the posterior is only updated in batches
after a delay, which is the situation here: labels reach /feedback late, and one controller changes the weights
now and then, not per request.

The router walks fixed integer weights, so it cannot draw from posteriors per request. Per-request Thompson
sampling serves each version with exactly the probability that it is the best, so the controller hands out that
probability as the version's share of traffic instead ("randomized probability matching": S. L. Scott, "A modern
Bayesian look at the multi-armed bandit", Applied Stochastic Models in Business and Industry 26, 2010; Russo,
Van Roy, Kazerouni, Osband & Wen, "A Tutorial on Thompson Sampling", Foundations and Trends in Machine Learning
11, 2018). Each version's accuracy has the posterior Beta(prior_a + correct, prior_b + labeled - correct); the
probability that each one is the best is estimated by Monte Carlo, every posterior drawn at once and each draw's
winner counted, ties split evenly.

Every version keeps at least ``min_share`` of the traffic:

    share = min_share + (1 - k * min_share) * P(best)

Pure probability matching sends almost nothing to a version that looks worse once the posteriors separate, and

- learning stops: a version that starts unlucky (a few wrong answers among its first labels) and is then starved
  never collects the labels that would correct that belief. With a floor, every version gets at least
  ``min_share`` of the labels, so a wrong early belief is corrected within a bounded number of requests instead of
  possibly never;
- each version's estimate stays alive: the A/B report, its confidence intervals and monitoring keep receiving
  fresh labels and latencies from every version, so a version that later gets better (or a winner that gets worse)
  is still seen.

The price is a known one: once the posteriors have separated, ``min_share`` of the traffic per worse version keeps
going to it, so regret keeps growing by about ``min_share * gap`` per request (benchmarks/bench_bandit.py).

Shares are deterministic given the counts: without a ``seed``, the generator is seeded from a hash of the sorted
counts (not Python's ``hash``, which is salted per process). A re-elected controller, or a second one racing it,
computes the same weights from the same counts, so a rerun never flips the allocation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

DEFAULT_DRAWS = 20_000
"""Monte Carlo draws per posterior: P(best) within about ±0.007 (2 SE at P = 0.5), well inside the tolerance."""

DEFAULT_MIN_SHARE = 0.1
"""The least share of traffic each version keeps when none is asked for."""
DEFAULT_TOTAL = 1000
"""The weights a set of shares is rounded to: 0.1% resolution, and small enough to read in the admin API."""

DEFAULT_TOLERANCE = 0.02
"""The smallest move of any version's share that is worth a new experiment period (and reshuffled sticky users)."""

# Shares computed from integer weights are exact to ~1e-16; a move of exactly ``tolerance`` must count as one.
_SHARE_EPSILON = 1e-12


def thompson_shares(
    counts: Mapping[str, tuple[int, int]],
    *,
    min_share: float,
    draws: int = DEFAULT_DRAWS,
    seed: int | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
) -> dict[str, float]:
    """Each version's share of traffic: ``min_share`` plus its part of the rest by its probability of being best.

    ``counts`` maps each version to (labeled, correct). The shares sum to 1. Without ``seed`` the Monte Carlo draws
    are seeded from the counts, so the same counts always give the same shares.
    """
    versions = _validate(counts, draws=draws, prior=prior)
    k = len(versions)
    if not 0.0 <= min_share <= 1.0 / k:
        raise ValueError(f"min_share must be in [0, 1/{k}] for {k} versions, got {min_share}")
    # k * min_share can land a hair above 1 when min_share == 1/k; the spread is then 0, not negative.
    spread = max(0.0, 1.0 - k * min_share)
    if spread == 0.0:
        return dict.fromkeys(counts, 1.0 / k)
    p_best = probability_best(counts, draws=draws, seed=seed, prior=prior)
    return {version: min_share + spread * p_best[version] for version in counts}


def probability_best(
    counts: Mapping[str, tuple[int, int]],
    *,
    draws: int = DEFAULT_DRAWS,
    seed: int | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
) -> dict[str, float]:
    """The Monte Carlo probability that each version has the highest accuracy under its Beta posterior."""
    versions = _validate(counts, draws=draws, prior=prior)
    # Sorted, so the draw each version gets does not depend on the order a caller built its mapping in.
    # Wrong answers counted in integers: labeled - correct in floats loses them once the counts pass 2**53.
    alpha = prior[0] + np.array([counts[v][1] for v in versions], dtype=np.float64)
    beta = prior[1] + np.array([counts[v][0] - counts[v][1] for v in versions], dtype=np.float64)
    rng = np.random.default_rng(_seed_from(counts, versions, draws, prior) if seed is None else seed)
    # One row per version: the reductions across versions below are then elementwise over long rows (fast).
    samples = rng.beta(alpha[:, None], beta[:, None], size=(len(versions), draws))
    wins = _split_wins(samples) / draws
    # Versions with the same posterior are exchangeable, so their true probabilities are equal: give them the mean
    # of their estimates. Equal counts then get exactly equal shares, not shares apart by Monte Carlo noise that
    # would start a new period (and move sticky users) for nothing.
    same: dict[tuple[int, int], list[int]] = {}
    for i, version in enumerate(versions):
        same.setdefault((int(counts[version][0]), int(counts[version][1])), []).append(i)
    for columns in same.values():
        wins[columns] = wins[columns].mean()
    column = {version: i for i, version in enumerate(versions)}
    return {version: float(wins[column[version]]) for version in counts}


def shares_to_weights(shares: Mapping[str, float], total: int = DEFAULT_TOTAL) -> dict[str, int]:
    """Integer weights summing to ``total`` in proportion to ``shares`` (largest remainder); a positive share gets >= 1.

    The router takes integer weights. Rounding each share on its own can miss ``total`` by a few units; the
    largest-remainder method hands the units floor() left over to the biggest remainders, so the sum is exact
    and no weight is more than one unit from its share. A version with a positive share keeps at least one
    unit (taken from the version rounded up the most), so a small share never rounds a version out of the
    experiment.
    """
    if not shares:
        raise ValueError("at least one version is needed")
    for version, share in shares.items():
        if not (math.isfinite(share) and share >= 0.0):
            raise ValueError(f"the share of {version!r} must be a finite number >= 0, got {share}")
    positive = sorted(v for v, share in shares.items() if share > 0.0)
    if not positive:
        raise ValueError("at least one share must be above 0")
    if total < len(positive):
        raise ValueError(f"total must be at least the number of versions with a share ({len(positive)}), got {total}")
    scale = total / math.fsum(shares.values())
    exact = {v: shares[v] * scale for v in positive}
    weights = {v: math.floor(exact[v]) for v in positive}
    left = total - sum(weights.values())
    # Ties in the remainder go by version name, so every caller rounds the same shares the same way.
    by_remainder = sorted(positive, key=lambda v: (-(exact[v] - weights[v]), v))
    for i in range(left):
        weights[by_remainder[i % len(by_remainder)]] += 1
    for version in positive:
        if weights[version] == 0:
            # Take the unit from the version most above its exact share (that keeps one): no weight moves further
            # from its share than it must.
            donor = min((v for v in positive if weights[v] > 1), key=lambda v: (exact[v] - weights[v], v))
            weights[donor] -= 1
            weights[version] = 1
    return {version: weights.get(version, 0) for version in shares}


def allocation_changed(old: Mapping[str, int], new: Mapping[str, int], tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether any version's share of traffic moved by at least ``tolerance`` from ``old`` to ``new`` weights.

    A new allocation starts a new experiment period and moves the sticky users whose hash falls in the moved
    slices; the controller only does that when the move is worth it. A version missing from one side has share 0
    there, and an old allocation with no weight at all differs from any new one that has some.
    """
    if not 0.0 < tolerance <= 1.0:
        raise ValueError(f"tolerance must be in (0, 1], got {tolerance}")
    old_shares, new_shares = _shares_of(old, "old"), _shares_of(new, "new")
    return any(
        abs(new_shares.get(v, 0.0) - old_shares.get(v, 0.0)) >= tolerance - _SHARE_EPSILON
        for v in old_shares.keys() | new_shares.keys()
    )


def _validate(counts: Mapping[str, tuple[int, int]], *, draws: int, prior: tuple[float, float]) -> list[str]:
    """The versions, sorted; ValueError for anything a posterior cannot be built from."""
    if not counts:
        raise ValueError("at least one version is needed")
    for version, (labeled, correct) in counts.items():
        if labeled < 0 or correct < 0:
            raise ValueError(f"counts of {version!r} must be >= 0, got labeled={labeled}, correct={correct}")
        if correct > labeled:
            raise ValueError(f"correct must be <= labeled for {version!r}, got labeled={labeled}, correct={correct}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    if not all(math.isfinite(p) and p > 0.0 for p in prior):
        raise ValueError(f"the prior's two parameters must be finite and > 0, got {prior}")
    return sorted(counts)


def _seed_from(
    counts: Mapping[str, tuple[int, int]], versions: list[str], draws: int, prior: tuple[float, float]
) -> int:
    """A seed that is a function of the inputs alone: the same on every process, host and rerun."""
    canonical = repr(([(v, int(counts[v][0]), int(counts[v][1])) for v in versions], draws, prior))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


def _split_wins(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How many draws (columns) each version (row) won; a draw tied between n versions counts 1/n to each."""
    is_best = samples == samples.max(axis=0)
    winners = is_best.sum(axis=0)
    if np.all(winners == 1):  # the usual case: continuous posteriors almost never tie
        wins: npt.NDArray[np.float64] = is_best.sum(axis=1, dtype=np.float64)
        return wins
    split: npt.NDArray[np.float64] = (is_best / winners).sum(axis=1)
    return split


def _shares_of(weights: Mapping[str, int], side: str) -> dict[str, float]:
    """Each version's weight over the total (all 0 when the total is 0)."""
    for version, weight in weights.items():
        if weight < 0:
            raise ValueError(f"{side} weight of {version!r} must be >= 0, got {weight}")
    total = sum(int(w) for w in weights.values())
    return {v: int(w) / total if total else 0.0 for v, w in weights.items()}
