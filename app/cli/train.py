"""``mlops-train`` / ``python app/train_model.py``: train v1 and v2 on Iris or a CSV and swap the set in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    args = parser.parse_args(argv)
    try:
        models_dir = args.models_dir or Settings.from_env().models_dir
        if args.data is not None:
            if not args.target:
                raise DataError("--data needs --target <column>")
            print(f"Loading {args.data}...")
            data = load_csv_dataset(args.data, args.target)
        else:
            print("Loading Iris dataset...")
            data = load_iris_dataset()
        print(f"{len(data.y)} rows, {len(data.feature_names)} features, classes: {', '.join(data.class_names)}")
        train(data, models_dir)
    except (DataError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("Training complete!")
    print(f"Model set written to {models_dir}")
    return 0
