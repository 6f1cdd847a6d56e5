"""``mlops-ab-report`` / ``python -m app.ab_report``: which version is better, and how sure we are."""

from __future__ import annotations

import argparse
import json
import sys

from app.clock import parse_since
from app.reports.ab import ab_report
from app.settings import Settings, SettingsError
from app.stats.experiment import render_text
from app.store import StoreUnavailable, open_store


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="A/B report from the prediction log and feedback.")
    parser.add_argument("--json", action="store_true", help="print JSON (what GET /ab/report returns)")
    parser.add_argument("--since", help="ISO-8601 start (default: the current experiment period)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"error: --{exc}", file=sys.stderr)
            return 2
    try:
        store = open_store(settings.database_url, busy_timeout=settings.store_busy_timeout)
        try:
            current = store.latest_experiment()
            if current is None:
                print("error: no experiment recorded yet: start the API first", file=sys.stderr)
                return 2
            report = ab_report(store, current, since=since)
        finally:
            store.close()
    except (StoreUnavailable, ValueError) as exc:
        print(f"error: cannot read the state store: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        period = report["experiment"]
        print(f"Experiment {period['id']} (since {report['since']}, weights {period['weights']})")
        print(render_text(report))
    return 0
