"""Synthetic serving traffic for drift simulations, and peeking experiments for the A/B verdict.

Windows are drawn independently of the training rows: a Gaussian per class
(mean vector and full covariance of that class's training rows, class
frequencies from the training rows) is fitted and sampled. Drift is a shift
added to every sampled row, measured in reference standard deviations (the
sample SD of each training column). Optionally the rows are rounded to
0.1 cm, as the UI sliders send them. Values are not clipped, so about 0.4 % of
petal widths (setosa) come out at or below 0.

Scenarios for ``monitoring.py --simulate`` (see ``SCENARIOS``):

- ``no_drift``: an unshifted window.
- ``moderate``: petal length (feature 2) shifted by +0.5 SD.
- ``severe``: every feature shifted by +1.5 SD.

``simulate_scenario`` draws one window of 100 rows rounded to 0.1 cm. With
``labels`` it fits the class Gaussians; without, it fits a full-covariance
Gaussian mixture to the reference (1-4 components, chosen by BIC; two for
the Iris training rows), which keeps multi-modal features multi-modal.

``simulate_peeking`` draws labelled A/B experiments and reads both verdicts (the fixed-horizon test and the
always-valid one) after every batch of labels, as an operator refreshing the report would.

``simulate_bandit`` routes simulated traffic with Thompson-sampling weights (``app.stats.bandit``), re-allocated by a
controller as labels come in late, and with a fixed equal split on the same traffic, and counts each one's regret.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_iris
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split

from app.stats.bandit import (
    DEFAULT_DRAWS,
    DEFAULT_TOLERANCE,
    DEFAULT_TOTAL,
    allocation_changed,
    shares_to_weights,
    thompson_shares,
)
from app.stats.drift import detect_drift
from app.stats.experiment import compare_proportions
from app.stats.sequential import DEFAULT_N_STAR, compare_sequential

ROUND_TO = 0.1
DEFAULT_WINDOW = 100
MAX_MIXTURE_COMPONENTS = 4


@dataclass(frozen=True, eq=False)
class GaussianClassModel:
    """A mixture with one multivariate Gaussian per class."""

    means: npt.NDArray[np.float64]
    covariances: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    _factors: npt.NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Precompute a square root of every covariance for sampling."""
        factors = np.stack([_covariance_root(cov) for cov in self.covariances])
        object.__setattr__(self, "_factors", factors)

    @classmethod
    def fit(cls, X: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> GaussianClassModel:
        """Fit per-class mean, full covariance and class frequency."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        if np.any(counts < 2):
            raise ValueError("every class needs at least 2 rows to estimate a covariance")
        means = np.stack([X[y == c].mean(axis=0) for c in classes])
        covariances = np.stack([np.atleast_2d(np.cov(X[y == c], rowvar=False)) for c in classes])
        return cls(means=means, covariances=covariances, weights=counts / counts.sum())

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        shift: npt.NDArray[np.float64] | None = None,
        round_to: float | None = None,
    ) -> npt.NDArray[np.float64]:
        """Draw ``n`` rows, optionally shifted and rounded to a grid."""
        labels = rng.choice(self.weights.size, size=n, p=self.weights)
        noise = rng.standard_normal((n, self.means.shape[1]))
        rows = self.means[labels] + np.einsum("nij,nj->ni", self._factors[labels], noise)
        if shift is not None:
            rows = rows + np.asarray(shift, dtype=float)
        return rows if round_to is None else round_to_grid(rows, round_to)


@dataclass(frozen=True)
class Scenario:
    """A drift scenario: which feature moves (None = all) and by how many reference SDs."""

    feature: int | None
    shift_sd: float
    description: str


SCENARIOS: dict[str, Scenario] = {
    "no_drift": Scenario(None, 0.0, "unshifted window from the fitted class Gaussians"),
    "moderate": Scenario(2, 0.5, "petal length shifted by +0.5 reference SD"),
    "severe": Scenario(None, 1.5, "every feature shifted by +1.5 reference SD"),
}


def iris_reference() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], list[str]]:
    """The 120 Iris training rows, their labels and the feature names (80/20 stratified split, seed 42)."""
    iris = load_iris()
    X_train, _, y_train, _ = train_test_split(
        iris.data, iris.target, test_size=0.2, random_state=42, stratify=iris.target
    )
    return X_train, y_train, list(iris.feature_names)


def round_to_grid(values: npt.NDArray[np.float64], step: float) -> npt.NDArray[np.float64]:
    """Round to multiples of ``step`` giving the same doubles as parsing e.g. "5.1"."""
    if step <= 0:
        raise ValueError("step must be > 0")
    inverse = round(1.0 / step)
    # x * 10 rounded then / 10 lands on the double nearest to k/10 (what a
    # slider value parses to); round(x / 0.1) * 0.1 would give 5.1000000000000005.
    if inverse > 0 and math.isclose(inverse * step, 1.0):
        return np.round(values * inverse) / inverse
    return np.round(values / step) * step


def shift_vector(reference: npt.NDArray[np.float64], feature: int | None, shift_sd: float) -> npt.NDArray[np.float64]:
    """Shift of ``shift_sd`` reference SDs on one feature, or on all when ``feature`` is None."""
    sd: npt.NDArray[np.float64] = np.asarray(reference, dtype=float).std(axis=0, ddof=1)
    if feature is None:
        return shift_sd * sd
    shift = np.zeros_like(sd)
    shift[feature] = shift_sd * sd[feature]
    return shift


def iter_windows(
    reference: npt.NDArray[np.float64],
    source: GaussianClassModel,
    *,
    feature: int | None,
    shift_sd: float,
    windows: int,
    window: int = DEFAULT_WINDOW,
    rng: np.random.Generator,
    rounded_fraction: float = 0.5,
) -> Iterator[npt.NDArray[np.float64]]:
    """Yield ``windows`` shifted windows; the first ``rounded_fraction`` of them rounded to 0.1."""
    shift = shift_vector(reference, feature, shift_sd)
    n_rounded = round(windows * rounded_fraction)
    for i in range(windows):
        yield source.sample(window, rng, shift=shift, round_to=ROUND_TO if i < n_rounded else None)


def detection_rate(
    reference: npt.NDArray[np.float64],
    source: GaussianClassModel,
    *,
    feature: int | None,
    shift_sd: float,
    windows: int,
    window: int = DEFAULT_WINDOW,
    rng: np.random.Generator,
    threshold: float,
    rounded_fraction: float = 0.5,
) -> float:
    """Fraction of simulated windows that ``detect_drift`` flags."""
    if windows < 1:
        raise ValueError("windows must be >= 1")
    names = [f"x{j}" for j in range(np.shape(reference)[1])]
    flagged: int = sum(
        detect_drift(reference, current, names, threshold=threshold)["drift_detected"]
        for current in iter_windows(
            reference,
            source,
            feature=feature,
            shift_sd=shift_sd,
            windows=windows,
            window=window,
            rng=rng,
            rounded_fraction=rounded_fraction,
        )
    )
    return flagged / windows


def simulate_scenario(
    name: str,
    reference: npt.NDArray[np.float64],
    feature_names: Sequence[str],
    rng: np.random.Generator,
    *,
    threshold: float,
    labels: npt.NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Run ``detect_drift`` on one rounded window of the named scenario."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {sorted(SCENARIOS)}")
    scenario = SCENARIOS[name]
    reference = np.asarray(reference, dtype=float)
    source = GaussianClassModel.fit(reference, labels) if labels is not None else mixture_model(reference)
    shift = shift_vector(reference, scenario.feature, scenario.shift_sd)
    current = source.sample(DEFAULT_WINDOW, rng, shift=shift, round_to=ROUND_TO)
    return detect_drift(reference, current, feature_names, threshold=threshold)


def mixture_model(reference: npt.NDArray[np.float64]) -> GaussianClassModel:
    """Class Gaussians for unlabelled rows: a full-covariance mixture, components chosen by BIC."""
    reference = np.asarray(reference, dtype=float)
    # Without labels a single Gaussian would flatten multi-modal features
    # (Iris petals), and that shape change alone would read as drift. At
    # least ~10 rows per component keeps the covariances estimable.
    fits = [
        GaussianMixture(k, covariance_type="full", random_state=0).fit(reference)
        for k in range(1, max(1, min(MAX_MIXTURE_COMPONENTS, reference.shape[0] // 10)) + 1)
    ]
    best = min(fits, key=lambda gm: gm.bic(reference))
    return GaussianClassModel(means=best.means_, covariances=best.covariances_, weights=best.weights_)


def _covariance_root(covariance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A matrix L with L @ L.T == covariance, also for singular covariances."""
    # eigh instead of Cholesky: a class with a constant feature has a
    # singular covariance, which Cholesky rejects.
    values, vectors = np.linalg.eigh(covariance)
    root: npt.NDArray[np.float64] = vectors * np.sqrt(np.clip(values, 0.0, None))
    return root


@dataclass(frozen=True)
class PeekingResult:
    """How often each test declared a difference when read after every ``step`` labels per version."""

    runs: int
    looks: int
    sequential_ever: float
    """Share of runs where the always-valid p-value went below alpha at some look."""
    fixed_ever: float
    """Share of runs where the fixed-horizon p-value went below alpha at some look (what peeking does)."""
    fixed_at_end: float
    """Share of runs where the fixed-horizon p-value is below alpha at the last look only (its design)."""
    sequential_median_labels: float | None
    """Median labels per version at the first always-valid rejection, among runs that rejected."""


def simulate_peeking(
    p_a: float,
    p_b: float,
    *,
    runs: int = 2000,
    step: int = 50,
    max_labels: int = 2000,
    alpha: float = 0.05,
    n_star: int = DEFAULT_N_STAR,
    seed: int = 0,
) -> PeekingResult:
    """Experiments whose versions are right with probability ``p_a`` and ``p_b``, read after every ``step`` labels
    per version up to ``max_labels``: how often each test says "different" (the error rate when p_a == p_b, the
    power otherwise). The fixed-horizon test is the report's (``compare_proportions``)."""
    rng = np.random.default_rng(seed)
    looks = max_labels // step
    n = step * np.arange(1, looks + 1)
    correct_a = rng.binomial(step, p_a, size=(runs, looks)).cumsum(axis=1)
    correct_b = rng.binomial(step, p_b, size=(runs, looks)).cumsum(axis=1)
    seq_first: list[int] = []
    fixed_ever = fixed_end = 0
    for run in range(runs):
        first = None
        fixed_hit = False
        for look in range(looks):
            a, b, labels = int(correct_a[run, look]), int(correct_b[run, look]), int(n[look])
            seq = compare_sequential(a, labels, b, labels, alpha=alpha, n_star=n_star)
            if first is None and seq["p_value"] < alpha:
                first = labels
            fixed = compare_proportions(a, labels, b, labels)["p_value"] < alpha
            fixed_hit = fixed_hit or fixed
            if look == looks - 1:
                fixed_end += fixed
        fixed_ever += fixed_hit
        if first is not None:
            seq_first.append(first)
    return PeekingResult(
        runs=runs,
        looks=looks,
        sequential_ever=len(seq_first) / runs,
        fixed_ever=fixed_ever / runs,
        fixed_at_end=fixed_end / runs,
        sequential_median_labels=float(np.median(seq_first)) if seq_first else None,
    )


@dataclass(frozen=True, eq=False)
class BanditResult:
    """Thompson-sampling routing and a fixed equal split on the same simulated traffic, per run and horizon."""

    accuracies: tuple[float, ...]
    horizons: tuple[int, ...]
    thompson_regret: npt.NDArray[np.float64]
    """(runs, horizons): expected wrong answers beyond always serving the best version, over the first h requests."""
    equal_regret: npt.NDArray[np.float64]
    """(runs, horizons): the same for the fixed equal split, routed by the same random points."""
    shares: npt.NDArray[np.float64]
    """(runs, horizons, versions): Thompson's traffic shares (from its integer weights) in force at request h."""
    periods: npt.NDArray[np.int64]
    """(runs, horizons): new allocations the controller started within the first h requests."""


def simulate_bandit(
    accuracies: Sequence[float],
    *,
    horizons: Sequence[int] = (1000, 5000, 20_000),
    runs: int = 200,
    min_share: float = 0.1,
    every: int = 100,
    lag: int = 100,
    draws: int = DEFAULT_DRAWS,
    tolerance: float = DEFAULT_TOLERANCE,
    total: int = DEFAULT_TOTAL,
    seed: int = 0,
) -> BanditResult:
    """Requests arrive one at a time at versions right with probability ``accuracies``; each request's label arrives
    ``lag`` requests later. After every ``every`` labels a controller turns the counts so far into weights
    (``thompson_shares`` -> ``shares_to_weights``) and adopts them only if ``allocation_changed``; requests are
    routed by the router's walk of the cumulative weights. The equal split routes the same random points.

    Requests, labels and re-allocations happen in order, so the first h requests of a run are a run of h requests:
    one run to the largest horizon gives every horizon.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.ndim != 1 or acc.size < 2 or not np.all((acc >= 0.0) & (acc <= 1.0)):
        raise ValueError(f"accuracies must be at least two probabilities, got {list(accuracies)}")
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive request counts, got {list(horizons)}")
    if runs < 1 or every < 1 or lag < 0:
        raise ValueError(f"runs and every must be >= 1 and lag >= 0, got {runs}, {every}, {lag}")
    k = acc.size
    names = [f"v{i + 1}" for i in range(k)]
    n = max(horizons)
    ends = np.asarray(horizons, dtype=np.int64)
    loss = acc.max() - acc
    equal = shares_to_weights(dict.fromkeys(names, 1.0 / k), total)
    thompson_regret = np.empty((runs, len(ends)))
    equal_regret = np.empty((runs, len(ends)))
    shares = np.empty((runs, len(ends), k))
    periods = np.empty((runs, len(ends)), dtype=np.int64)
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        point = rng.random(n)  # where each request lands on [0, 1): the router's random draw
        outcome = rng.random(n)  # request i is answered right by version v iff outcome[i] < accuracy[v]
        served = np.empty(n, dtype=np.int64)
        weights = equal
        starts, allocations = [0], [_weight_vector(weights, names)]
        labeled = np.zeros(k, dtype=np.int64)
        correct = np.zeros(k, dtype=np.int64)
        start, labelled_to = 0, 0
        while start < n:
            # The labels of requests [0, labelled_to + every) are all in once request labelled_to + every + lag is
            # about to be routed: until then the weights stay.
            stop = min(labelled_to + every + lag, n)
            served[start:stop] = _walk(allocations[-1], point[start:stop])
            start = stop
            if start == n:
                break
            new_labels = served[labelled_to : labelled_to + every]
            right = outcome[labelled_to : labelled_to + every] < acc[new_labels]
            labeled += np.bincount(new_labels, minlength=k)
            correct += np.bincount(new_labels[right], minlength=k)
            labelled_to += every
            counts = {name: (int(labeled[i]), int(correct[i])) for i, name in enumerate(names)}
            proposed = shares_to_weights(thompson_shares(counts, min_share=min_share, draws=draws), total)
            if allocation_changed(weights, proposed, tolerance):
                weights = proposed
                starts.append(start)
                allocations.append(_weight_vector(weights, names))
        in_force = np.searchsorted(np.asarray(starts), ends - 1, side="right") - 1
        thompson_regret[run] = np.cumsum(loss[served])[ends - 1]
        equal_regret[run] = np.cumsum(loss[_walk(_weight_vector(equal, names), point)])[ends - 1]
        shares[run] = np.stack(allocations)[in_force] / total
        periods[run] = in_force
    return BanditResult(
        accuracies=tuple(float(a) for a in acc),
        horizons=tuple(int(h) for h in ends),
        thompson_regret=thompson_regret,
        equal_regret=equal_regret,
        shares=shares,
        periods=periods,
    )


def _weight_vector(weights: dict[str, int], names: Sequence[str]) -> npt.NDArray[np.int64]:
    """The weights in the simulation's version order."""
    return np.array([weights[name] for name in names], dtype=np.int64)


def _walk(weights: npt.NDArray[np.int64], points: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """The version each point picks: ``app.serving.router.Router.choose``'s walk of the cumulative weights."""
    edges = np.cumsum(weights) / weights.sum()
    chosen: npt.NDArray[np.int64] = np.minimum(np.searchsorted(edges, points, side="right"), weights.size - 1)
    return chosen
