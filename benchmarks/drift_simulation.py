"""Drift detection rates on simulated Iris traffic, next to the seed's naive score.

Windows of 100 rows come from per-class Gaussians fitted to the 120 Iris
training rows (independent of those rows), half of them rounded to 0.1 cm.
For each setting the same windows go to ``detect_drift`` and to the seed's
score (mean over features of |mean difference| / reference SD, drift at
>= 0.3). Also prints the per-call time of ``detect_drift``.

Run from the repository root::

    .venv/bin/python benchmarks/drift_simulation.py [--windows 1000] [--null-windows 2000]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Iterable

import numpy as np

from app.settings import Settings
from app.stats.drift import detect_drift
from app.stats.simulation import SCENARIOS, GaussianClassModel, iris_reference, iter_windows

THRESHOLD = Settings().drift_threshold  # the DRIFT_THRESHOLD default

NAIVE_THRESHOLD = 0.3
ROW = "{:<34}{:>8}{:>14}{:>9}"


def naive_score(reference: np.ndarray, current: np.ndarray) -> float:
    """The seed's score: mean over features of |mean difference| in reference SDs."""
    return float(np.mean(np.abs(current.mean(axis=0) - reference.mean(axis=0)) / reference.std(axis=0)))


def rates(reference: np.ndarray, windows: Iterable[np.ndarray], names: list[str]) -> tuple[float, float, int]:
    """Fraction of windows flagged by detect_drift and by the naive score, and the window count."""
    ours = naive = total = 0
    for current in windows:
        ours += detect_drift(reference, current, names, threshold=THRESHOLD)["drift_detected"]
        naive += naive_score(reference, current) >= NAIVE_THRESHOLD
        total += 1
    return ours / total, naive / total, total


def row(label: str, result: tuple[float, float, int]) -> str:
    """One table line: label, windows, both rates."""
    ours, naive, total = result
    return ROW.format(label, total, f"{ours:.2%}", f"{naive:.2%}")


def time_per_call(reference: np.ndarray, current: np.ndarray, names: list[str]) -> float:
    """Best-of-7 mean seconds per detect_drift call."""
    calls = 200
    return (
        min(timeit.repeat(lambda: detect_drift(reference, current, names, threshold=THRESHOLD), number=calls, repeat=7))
        / calls
    )


def false_alarm_section(X: np.ndarray, source: GaussianClassModel, names: list[str], n: int, seed: int) -> None:
    """Unshifted windows: 100 rows, 30 rows, and a freshly drawn reference each time."""
    print(ROW.format("false alarms (no shift)", "windows", "detect_drift", "naive"))
    common = {"feature": None, "shift_sd": 0.0, "windows": n}
    full = iter_windows(X, source, **common, rng=np.random.default_rng(seed))
    print(row("  100-row windows", rates(X, full, names)))
    small = iter_windows(X, source, **common, window=30, rng=np.random.default_rng(seed + 1))
    print(row("  30-row windows (min_samples)", rates(X, small, names)))
    print(row("  fresh 120-row reference each", fresh_reference_rates(source, names, n, seed + 2)))


def fresh_reference_rates(source: GaussianClassModel, names: list[str], n: int, seed: int) -> tuple[float, float, int]:
    """False alarms when the reference is also a new sample, i.e. unconditional on the Iris rows."""
    rng = np.random.default_rng(seed)
    ours = naive = 0
    for i in range(n):
        reference = source.sample(120, rng, round_to=0.1)
        current = source.sample(100, rng, round_to=0.1 if i < n // 2 else None)
        ours += detect_drift(reference, current, names, threshold=THRESHOLD)["drift_detected"]
        naive += naive_score(reference, current) >= NAIVE_THRESHOLD
    return ours / n, naive / n, n


def shift_section(X: np.ndarray, source: GaussianClassModel, names: list[str], n: int, seed: int) -> None:
    """Single-feature shifts of +/-1 and +/-0.5 reference SDs, with the per-shift average."""
    for shift in (1.0, -1.0, 0.5, -0.5):
        print()
        print(ROW.format(f"shift {shift:+.1f} SD", "windows", "detect_drift", "naive"))
        results = []
        for feature, name in enumerate(names):
            rng = np.random.default_rng([seed, feature, int(shift * 10) + 100])
            windows = iter_windows(X, source, feature=feature, shift_sd=shift, windows=n, rng=rng)
            results.append(rates(X, windows, names))
            print(row(f"  {name}", results[-1]))
        average = (float(np.mean([r[0] for r in results])), float(np.mean([r[1] for r in results])), n)
        print(row("  average over features", average))


def scenario_section(X: np.ndarray, source: GaussianClassModel, names: list[str], n: int, seed: int) -> None:
    """The monitoring.py --simulate scenarios as detection rates."""
    print()
    print(ROW.format("scenarios", "windows", "detect_drift", "naive"))
    for i, (name, scenario) in enumerate(SCENARIOS.items()):
        windows = iter_windows(
            X,
            source,
            feature=scenario.feature,
            shift_sd=scenario.shift_sd,
            windows=n,
            rng=np.random.default_rng([seed, i]),
        )
        print(row(f"  {name}", rates(X, windows, names)) + f"   {scenario.description}")


def main() -> None:
    """Print per-call time and detection rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000, help="windows per shifted setting")
    parser.add_argument("--null-windows", type=int, default=2000, help="windows per false-alarm setting")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    X, y, names = iris_reference()
    source = GaussianClassModel.fit(X, y)
    current = source.sample(100, np.random.default_rng(args.seed), round_to=0.1)
    print(
        f"detect_drift: {time_per_call(X, current, names) * 1e3:.2f} ms per call "
        f"(reference 120x4, window 100x4; best of 7 x 200 calls)"
    )
    print(
        f"drift = Holm-adjusted CvM p <= 0.05 (score >= {THRESHOLD}); "
        f"naive = mean |mean diff| / SD >= {NAIVE_THRESHOLD}\n"
    )
    false_alarm_section(X, source, names, args.null_windows, args.seed)
    shift_section(X, source, names, args.windows, args.seed)
    scenario_section(X, source, names, args.windows, args.seed)


if __name__ == "__main__":
    main()
