"""``mlops-drift`` / ``python app/monitoring.py``: the drift report, for people, cron and CI.

Exit status: 0 OK (or not enough data yet), 1 drift detected, 2 cannot run (no models, no store).
With --simulate: 0 when every scenario is classified as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from app.artifacts import load_training_stats
from app.clock import utc_now
from app.reports.drift import window_drift
from app.settings import Settings, SettingsError
from app.store import StoreUnavailable, open_store

RULE = "=" * 50


def render(report: dict[str, Any], title: str = "Drift Detection Report") -> str:
    """The seed's report layout, with the per-feature evidence under it."""
    lines = [
        RULE,
        f"{title} - {report.get('timestamp', utc_now())}",
        RULE,
        f"Drift Score: {report['drift_score']:.2f}",
        f"Threshold: {report['threshold']:.2f}",
        f"Status: {report['status']}",
        f"Window: {report['samples']} of the last {report.get('window_size', report['samples'])} predictions",
        "",
    ]
    if report["status"] == "INSUFFICIENT_DATA":
        lines.append("ℹ️  Not enough predictions yet to judge drift.")
    elif report["drift_detected"]:
        lines += ["⚠️  WARNING: Potential model drift detected!", "   Consider retraining the model with recent data."]
    else:
        lines.append("✅ No significant drift detected.")
    if report["features"]:
        lines += ["", f"{'feature':<16}{'p-value':>10}{'adjusted':>10}{'PSI':>8}{'shift (SD)':>12}  drifted"]
        for name, f in report["features"].items():
            lines.append(
                f"{name:<16}{f['p_value']:>10.4f}{f['p_value_adjusted']:>10.4f}{f['psi']:>8.3f}"
                f"{f['mean_shift_sd']:>+12.2f}  {'yes' if f['drifted'] else 'no'}"
            )
    lines.append(RULE)
    return "\n".join(lines)


def live_report(settings: Settings) -> dict[str, Any]:
    """Drift of the live window in the store, against the verified training reference."""
    stats = load_training_stats(settings.models_dir, settings.signing_key)
    store = open_store(settings.database_url, busy_timeout=settings.store_busy_timeout)
    try:
        return window_drift(store, np.asarray(stats["reference"], dtype=float), stats["feature_names"], settings)
    finally:
        store.close()


def simulate(settings: Settings, seed: int) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """One window per scenario; True when each is classified as expected."""
    from app.stats.simulation import SCENARIOS, simulate_scenario  # scikit-learn, only for --simulate

    stats = load_training_stats(settings.models_dir, settings.signing_key)
    rng = np.random.default_rng(seed)
    reference = np.asarray(stats["reference"], dtype=float)
    labels = stats.get("reference_labels")
    results, as_expected = [], True
    for name, scenario in SCENARIOS.items():
        report = simulate_scenario(
            name, reference, stats["feature_names"], rng, threshold=settings.drift_threshold, labels=labels
        )
        report = {
            **report,
            "window_size": report["samples"],
            "timestamp": utc_now(),
            "scenario": name,
            "description": scenario.description,
        }
        as_expected &= report["drift_detected"] == (scenario.shift_sd != 0)
        results.append((name, report))
    return results, as_expected


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="Drift detection report from the live prediction log.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the text report")
    parser.add_argument("--simulate", action="store_true", help="run the no/moderate/severe drift scenarios")
    parser.add_argument("--seed", type=int, default=42, help="random seed for --simulate")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.simulate:
            results, as_expected = simulate(settings, args.seed)
            if args.json:
                print(json.dumps(dict(results), indent=2))
            else:
                for name, report in results:
                    print(render(report, f"Simulated '{name}' ({report['description']})"))
            return 0 if as_expected else 1
        report = live_report(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError, StoreUnavailable) as exc:
        print(f"error: cannot compute drift: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["drift_detected"] else 0
