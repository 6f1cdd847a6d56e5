"""The one rule for a feature value, wherever rows come from (a request, a file, a training CSV).

A value must be a finite number within float32's range: scikit-learn's trees compare float32 inputs,
so anything beyond it would become infinity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_bad_value(X: npt.NDArray[Any]) -> tuple[tuple[int, ...], str] | None:
    """The index of the first value that breaks the rule and why (row-major order), or None."""
    values = np.asarray(X, dtype=np.float64)
    finite = np.isfinite(values)
    bad = ~finite | (np.abs(np.where(finite, values, 0.0)) > FLOAT32_MAX)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = values[index]
    if np.isnan(value):
        return index, "is missing or NaN"
    if not np.isfinite(value):
        return index, "is not finite"
    return index, f"is too large (limit ±{FLOAT32_MAX:.3g})"
