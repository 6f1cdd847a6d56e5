"""Drift of the live window: the store's last DRIFT_WINDOW logged rows against the training reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.clock import utc_now
from app.settings import Settings
from app.stats.drift import detect_drift
from app.store import Store


def window_drift(
    store: Store, reference: npt.NDArray[np.float64], feature_names: list[str], settings: Settings
) -> dict[str, Any]:
    """Drift of the store's last DRIFT_WINDOW rows (every worker's) against ``reference``."""
    rows = store.recent_features(settings.drift_window)
    width = len(feature_names)
    current = np.array([r for r in rows if len(r) == width], dtype=np.float64).reshape(-1, width)
    result = detect_drift(
        reference, current, feature_names, threshold=settings.drift_threshold, min_samples=settings.drift_min_samples
    )
    return {**result, "window_size": settings.drift_window, "timestamp": utc_now()}
