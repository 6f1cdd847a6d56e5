"""Thompson-sampling routing against a fixed equal split: regret, where the traffic ends up, and A/A wander.

Simulated traffic, one request at a time, each labelled a fixed number of requests later; a controller turns the
labels so far into new weights after every batch (``thompson_shares`` -> ``shares_to_weights``, adopted only when
``allocation_changed``), and the router walks those weights. The equal split routes the same random points. Regret
is the expected number of wrong answers beyond always serving the best version. Uses app.stats.simulation's
``simulate_bandit``, which calls the controller's own functions (app.stats.bandit).

    python benchmarks/bench_bandit.py [--runs 200] [--three] [--draws 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from app.stats.simulation import BanditResult, simulate_bandit

SCENARIOS = [
    ("90% vs 95%", (0.90, 0.95)),
    ("80% vs 95%", (0.80, 0.95)),
    ("A/A, both 95%", (0.95, 0.95)),
]
THREE = ("85% vs 90% vs 95%", (0.85, 0.90, 0.95))


def horizons(text: str) -> list[int]:
    """Parse "1000,5000,20000"."""
    return [int(part) for part in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    """Simulate every scenario, print one row per horizon."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--horizons", type=horizons, default=[1000, 5000, 20_000], help="requests, comma-separated")
    parser.add_argument("--min-share", type=float, default=0.1)
    parser.add_argument("--every", type=int, default=100, help="labels between re-allocations")
    parser.add_argument("--lag", type=int, default=100, help="requests between a request and its label")
    # The controller draws 20,000; 2,000 keeps the default run under a minute (same figures within noise, README).
    parser.add_argument("--draws", type=int, default=2000, help="Monte Carlo draws per re-allocation")
    parser.add_argument("--tolerance", type=float, default=0.02, help="share move that starts a new period")
    parser.add_argument("--three", action="store_true", help="also three versions, 85%% / 90%% / 95%%")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(
        f"{args.runs} runs per scenario; min_share {args.min_share}; re-allocation every {args.every} labels, "
        f"labels {args.lag} requests late;\n{args.draws:,} draws per re-allocation; new period when a share moves "
        f">= {args.tolerance}. Regret: expected wrong answers beyond always serving the best version (mean, and the "
        "worst 5% of runs)."
    )
    print(
        f"{'scenario':<20} {'requests':>8} {'Thompson':>9} {'(95th pct)':>10} {'equal split':>11} {'ratio':>6}"
        f"   {'share of the best: mean [5%, 95%]':<34} {'periods':>7}"
    )
    for name, accuracies in [*SCENARIOS, *([THREE] if args.three else [])]:
        started = time.perf_counter()
        result = simulate_bandit(
            accuracies,
            horizons=args.horizons,
            runs=args.runs,
            min_share=args.min_share,
            every=args.every,
            lag=args.lag,
            draws=args.draws,
            tolerance=args.tolerance,
            seed=args.seed,
        )
        for row in rows(name, result):
            print(row)
        print(f"{'':<20} ({time.perf_counter() - started:.1f} s)")
    return 0


def rows(name: str, result: BanditResult) -> list[str]:
    """One line per horizon; with equal versions, the first version's share and its spread instead of the best's."""
    best = int(np.argmax(result.accuracies))
    tied = result.accuracies.count(result.accuracies[best]) > 1
    lines = []
    for j, h in enumerate(result.horizons):
        thompson, equal = result.thompson_regret[:, j], result.equal_regret[:, j]
        ratio = f"{thompson.mean() / equal.mean():>6.2f}" if equal.mean() > 0 else f"{'-':>6}"
        share = result.shares[:, j, best]
        low, high = np.quantile(share, [0.05, 0.95])
        what = f"v{best + 1}'s, sd {share.std():.2f}: " if tied else ""
        spread = f"{what}{share.mean():.3f} [{low:.2f}, {high:.2f}]"
        lines.append(
            f"{name if j == 0 else '':<20} {h:>8,} {thompson.mean():>9.1f} {np.quantile(thompson, 0.95):>10.1f}"
            f" {equal.mean():>11.1f} {ratio}   {spread:<34} {result.periods[:, j].mean():>7.1f}"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
