"""Peeking at the A/B verdict: the always-valid test against the fixed-horizon one, side by side.

Simulated experiments read after every 50 labels per version up to 2,000: with equal versions (A/A), how often
each test declares a difference at some look (the always-valid one must stay at or below alpha); with a 10-point
accuracy gap, how often and how early it is found. Uses the report's own functions (app.stats.simulation,
app.stats.experiment).

    python benchmarks/bench_sequential.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import time

from app.stats.simulation import simulate_peeking


def main() -> int:
    """Simulate, print the rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--max-labels", type=int, default=2000)
    args = parser.parse_args()
    scenarios = [
        ("A/A, both 90% right", 0.90, 0.90),
        ("A/A, both 50% right", 0.50, 0.50),
        ("10-point gap, 85% vs 95%", 0.85, 0.95),
        ("10-point gap, 50% vs 60%", 0.50, 0.60),
    ]
    print(f"{args.runs} runs per scenario, a look after every {args.step} labels per version up to {args.max_labels}")
    print(
        f"{'scenario':<28} {'always-valid':>13} {'fixed, peeking':>15} {'fixed, once at end':>19} {'median labels':>14}"
    )
    for seed, (name, p_a, p_b) in enumerate(scenarios):
        started = time.perf_counter()
        r = simulate_peeking(p_a, p_b, runs=args.runs, step=args.step, max_labels=args.max_labels, seed=seed)
        median = "-" if r.sequential_median_labels is None else f"{r.sequential_median_labels:,.0f}"
        print(
            f"{name:<28} {r.sequential_ever:>13.1%} {r.fixed_ever:>15.1%} {r.fixed_at_end:>19.1%} {median:>14}"
            f"   ({time.perf_counter() - started:.1f} s)"
        )
        if p_a == p_b and r.sequential_ever:
            print(f"{'':<28} peeking at the fixed test errs {r.fixed_ever / r.sequential_ever:.1f}x as often")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
