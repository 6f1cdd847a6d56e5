"""``mlops-train`` / ``python app/train_model.py``: train v1 and v2 on Iris or a CSV and swap the set in.

With MODEL_SIGNING_KEY (or MODEL_SIGNING_KEY_FILE) in the environment the new set is signed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.artifacts import DEFAULT_MODEL_NAME
from app.cli import models
from app.settings import Settings, SettingsError
from app.training.datasets import DataError, load_csv_dataset, load_iris_dataset
from app.training.trainer import train


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Train the model versions (v1: 50 trees, v2: 100 trees).")
    parser.add_argument("--data", type=Path, help="CSV of numeric features and a categorical target (default: Iris)")
    parser.add_argument("--target", help="name of the target column in --data")
    parser.add_argument(
        "--models-dir", type=Path, help="where to write the model set (default: MODELS_DIR or app/models)"
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help=f"the name the V2 protocol serves the set under, /v2/models/<name> (default: {DEFAULT_MODEL_NAME})",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also store the set in the state store (DATABASE_URL), so every host serves it after POST /models/reload",
    )
    args = parser.parse_args(argv)
    try:
        # --models-dir is validated like MODELS_DIR (a signing key file must not be inside it).
        settings = Settings.from_env(**({"models_dir": args.models_dir} if args.models_dir else {}))
        models_dir = settings.models_dir
        if args.data is not None:
            if not args.target:
                raise DataError("--data needs --target <column>")
            print(f"Loading {args.data}...")
            data = load_csv_dataset(args.data, args.target)
        else:
            print("Loading Iris dataset...")
            data = load_iris_dataset()
        print(f"{len(data.y)} rows, {len(data.feature_names)} features, classes: {', '.join(data.class_names)}")
        train(data, models_dir, signing_key=settings.signing_key, model_name=args.model_name)
    except (DataError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("Training complete!")
    print(f"Model set written to {models_dir}" + (" (signed)" if settings.signing_key else ""))
    if args.publish:
        return models.publish(settings)
    return 0
