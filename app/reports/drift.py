"""Drift of the live window: recent predictions of every worker against the training reference.

The window is the newest DRIFT_WINDOW predictions of the last DRIFT_WINDOW_SECONDS, with at most
DRIFT_CLIENT_SHARE of it from any one client (its user id when it sends one, else its address): one
client's burst cannot fill the window and flip the verdict either way. Rows logged without a client
(before clients were recorded, or by tools) are not capped.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from app.clock import utc_now
from app.settings import Settings
from app.stats.drift import detect_drift
from app.store import Store, WindowRow

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


def cap_clients(rows: list[WindowRow], window: int, share: float, width: int) -> tuple[list[list[float]], int]:
    """The newest rows, at most ``share`` of ``window`` per client; returns them and how many were skipped."""
    per_client = max(1, math.floor(share * window))
    taken: Counter[str] = Counter()
    kept: list[list[float]] = []
    skipped = 0
    for row in rows:
        if len(kept) >= window:
            break
        if len(row.features) != width:
            continue
        client = row.user_hash or row.client_hash
        if client is not None:
            if taken[client] >= per_client:
                skipped += 1
                continue
            taken[client] += 1
        kept.append(row.features)
    return kept, skipped
