"""Drift of the live window: recent predictions of every worker against the training reference.

The window is the newest DRIFT_WINDOW predictions of the last DRIFT_WINDOW_SECONDS, with at most
DRIFT_CLIENT_SHARE of it from any one client (its user id when it sends one, else its address): one
client's burst cannot fill the window and flip the verdict either way. Rows logged without a client
(before clients were recorded, or by tools) are not capped.

The history is the same window taken again and again further back in the log, each one ending where the
newer one began, so the windows never share a row; it is not limited to DRIFT_WINDOW_SECONDS.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from app.clock import iso, utc_now
from app.settings import Settings
from app.stats.drift import detect_drift
from app.store import Store, WindowRow

MAX_HISTORY_POINTS = 100
"""The most windows the drift history goes back."""

# How many recent rows are read to fill a window whose clients are capped: enough for one dominant
# client to be skipped past, bounded so a scrape stays cheap.
_SCAN_FACTOR = 4


def window_drift(
    store: Store, reference: npt.NDArray[np.float64], feature_names: list[str], settings: Settings
) -> dict[str, Any]:
    """Drift of the capped recent window against ``reference``."""
    window = settings.drift_window
    scan = math.ceil(window / settings.drift_client_share) * _SCAN_FACTOR
    rows = store.recent_window(scan, time.time() - settings.drift_window_seconds)
    kept, capped = cap_clients(rows, window, settings.drift_client_share, len(feature_names))
    current = np.array(kept, dtype=np.float64).reshape(-1, len(feature_names))
    result = detect_drift(
        reference, current, feature_names, threshold=settings.drift_threshold, min_samples=settings.drift_min_samples
    )
    return {
        **result,
        "window_size": window,
        "window_seconds": settings.drift_window_seconds,
        "client_share": settings.drift_client_share,
        "capped_rows": capped,
        "timestamp": utc_now(),
    }


def drift_history(
    store: Store, reference: npt.NDArray[np.float64], feature_names: list[str], settings: Settings, points: int
) -> dict[str, Any]:
    """Drift of up to ``points`` successive windows going back through the log, oldest first.

    One bounded query per window. Windows with fewer than DRIFT_MIN_SAMPLES rows (the start of the log,
    or a stretch one client filled) are left out.
    """
    window = settings.drift_window
    scan = math.ceil(window / settings.drift_client_share) * _SCAN_FACTOR
    windows: list[dict[str, Any]] = []
    before: int | None = None
    for _ in range(points):
        rows = store.recent_window(scan, 0.0, before_id=before)
        if not rows:
            break
        kept, _, read = _fill(rows, window, settings.drift_client_share, len(feature_names))
        span = rows[:read]
        before = span[-1].id
        if len(kept) < settings.drift_min_samples:
            continue
        current = np.array(kept, dtype=np.float64).reshape(-1, len(feature_names))
        result = detect_drift(
            reference,
            current,
            feature_names,
            threshold=settings.drift_threshold,
            min_samples=settings.drift_min_samples,
        )
        windows.append(
            {
                "start": iso(min(r.ts for r in span)),
                "end": iso(max(r.ts for r in span)),
                "rows": len(kept),
                "drift_score": result["drift_score"],
                "drift_detected": result["drift_detected"],
                "status": result["status"],
                "features": result["features"],
            }
        )
    windows.reverse()
    return {
        "threshold": settings.drift_threshold,
        "window_size": window,
        "windows": windows,
        "timestamp": utc_now(),
    }


def cap_clients(rows: list[WindowRow], window: int, share: float, width: int) -> tuple[list[list[float]], int]:
    """The newest rows, at most ``share`` of ``window`` per client; returns them and how many were skipped."""
    kept, skipped, _ = _fill(rows, window, share, width)
    return kept, skipped


def _fill(rows: list[WindowRow], window: int, share: float, width: int) -> tuple[list[list[float]], int, int]:
    """``cap_clients``, and how many of ``rows`` it read to fill the window (where the next window starts)."""
    per_client = max(1, math.floor(share * window))
    taken: Counter[str] = Counter()
    kept: list[list[float]] = []
    skipped = 0
    read = 0
    for row in rows:
        if len(kept) >= window:
            break
        read += 1
        if len(row.features) != width:
            continue
        client = row.user_hash or row.client_hash
        if client is not None:
            if taken[client] >= per_client:
                skipped += 1
                continue
            taken[client] += 1
        kept.append(row.features)
    return kept, skipped, read
