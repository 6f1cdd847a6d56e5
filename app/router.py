"""The A/B router: weighted random choice, or sticky choice by user id. Pure, no I/O.

Sticky assignment hashes (salt, user id) to a point in [0, 1) and walks the cumulative weights,
the same walk a random draw takes. The point depends on nothing but the salt and the id, so a
user lands on the same version on every worker and every replica while the weights stay the
same; and when weights move, only the users whose point falls in the moved slice change version.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from typing import Callable, Mapping


class NoRoutableModel(Exception):
    """Every servable version has weight 0."""


def bucket(salt: str, user_id: str) -> float:
    """A stable point in [0, 1) for this user under this salt."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_user(salt: str, user_id: str) -> str:
    """A short, non-reversible id for logging a user without storing who they are."""
    return hashlib.sha256(f"log\x00{salt}\x00{user_id}".encode()).hexdigest()[:16]


class Router:
    """Chooses a version among ``weights`` restricted to the versions that can serve."""

    def __init__(self, weights: Mapping[str, int], servable: list[str] | None = None) -> None:
        usable = {v: int(w) for v, w in weights.items() if w > 0 and (servable is None or v in servable)}
        self.weights = dict(weights)
        self._versions = list(usable)
        self._total = sum(usable.values())
        running, self._edges = 0, []
        for w in usable.values():
            running += w
            self._edges.append(running / self._total)

    def choose(self, user_id: str | None = None, *, salt: str = "", rand: Callable[[], float] = random.random) -> str:
        """The version for this request: sticky when ``user_id`` is given, else weighted random."""
        if not self._versions:
            raise NoRoutableModel("no model version with a weight above 0 is loaded")
        point = bucket(salt, user_id) if user_id is not None else rand()
        index = bisect.bisect_right(self._edges, point)
        return self._versions[min(index, len(self._versions) - 1)]

    def share(self, version: str) -> float:
        """The fraction of traffic this version is configured to get among servable versions."""
        if version not in self._versions:
            return 0.0
        return self.weights[version] / self._total


def validate_weights(raw: object, known: list[str], current: Mapping[str, int]) -> dict[str, int]:
    """Check a {"v1": 90, "v2": 10} update; return the full new weights or raise ValueError."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError('"weights" must be a non-empty object like {"v1": 90, "v2": 10}')
    updated = {v: int(current.get(v, 0)) for v in known}
    for version, weight in raw.items():
        if version not in known:
            raise ValueError(f"unknown model version {version!r}; known: {', '.join(known)}")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ValueError(f"weight of {version} must be a non-negative integer, got {weight!r}")
        if not 0 <= weight <= 1_000_000:
            raise ValueError(f"weight of {version} must be between 0 and 1000000, got {weight}")
        updated[version] = weight
    if sum(updated.values()) == 0:
        raise ValueError("at least one weight must be above 0")
    return updated
