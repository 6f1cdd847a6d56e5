"""``mlops-models`` / ``python -m app.cli.models``: model sets shared through the state store.

    python -m app.cli.models publish                 # store MODELS_DIR's set for every host
    python -m app.cli.models pull                    # bring MODELS_DIR to the newest published set

Both read DATABASE_URL, MODELS_DIR and MODEL_SIGNING_KEY(_FILE) like the API. ``pull`` exits 0 when
MODELS_DIR holds the newest published set (fetched now or already), 3 when the store holds none (run_demo.sh
then trains), 2 on an error. A running API pulls by itself at start and on POST /models/reload; this is for
scripts that must know before the API starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from app.errors import IntegrityError
from app.serving import model_sync
from app.settings import Settings, SettingsError
from app.store import Store, StoreUnavailable, open_store

NOTHING_PUBLISHED = 3


def publish(settings: Settings) -> int:
    """Store MODELS_DIR's set for every host; returns the exit status."""

    def action(store: Store) -> int:
        set_id = model_sync.publish(store, settings.models_dir, settings.signing_key)
        print(f"Published as model set {set_id}: POST /models/reload on any host makes every host serve it")
        return 0

    return _with_store(settings, action, "the model set in MODELS_DIR was not published")


def pull(settings: Settings) -> int:
    """Bring MODELS_DIR to the newest published set; returns the exit status."""

    def action(store: Store) -> int:
        if store.latest_model_set() is None:
            print("no model set is published in the state store", file=sys.stderr)
            return NOTHING_PUBLISHED
        fetched = model_sync.pull(store, settings.models_dir, settings.signing_key)
        if fetched is None:
            print(f"{settings.models_dir.name} already holds the newest published model set")
        else:
            print(f"Fetched model set {fetched} into {settings.models_dir}")
        return 0

    return _with_store(settings, action, "the published model set was not installed")


def _with_store(settings: Settings, action: Callable[[Store], int], failure: str) -> int:
    """``action(store)`` on DATABASE_URL's store; a failure is one line naming ``failure`` and exit status 2."""
    store = open_store(settings.database_url, busy_timeout=settings.store_busy_timeout, create=True)
    try:
        return action(store)
    except StoreUnavailable as exc:
        print(f"error: {failure}, the state store is unavailable: {exc}", file=sys.stderr)
    except (IntegrityError, ValueError, OSError) as exc:
        print(f"error: {failure}: {exc}", file=sys.stderr)
    finally:
        store.close()
    return 2


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Publish or fetch the model set shared through DATABASE_URL.")
    parser.add_argument("command", choices=("publish", "pull"))
    parser.add_argument("--models-dir", type=Path, help="the model set's directory (default: MODELS_DIR or app/models)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(**({"models_dir": args.models_dir} if args.models_dir else {}))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return publish(settings) if args.command == "publish" else pull(settings)


if __name__ == "__main__":
    sys.exit(main())
