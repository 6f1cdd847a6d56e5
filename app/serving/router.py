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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigUpdate:
    """A routing change (a validated PUT /config body): what it changes (None: unchanged)."""

    weights: dict[str, int] | None = None
    shadow: list[str] | None = None
    policy: str | None = None
    """"fixed" or "thompson"."""
    min_share: float | None = None


class NoRoutableModel(Exception):
    """Every servable version has weight 0."""


def bucket(salt: str, user_id: str) -> float:
    """A stable point in [0, 1) for this user under this salt."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_user(salt: str, user_id: str) -> str:
    """A short, non-reversible id for logging a user without storing who they are."""
    return hashlib.sha256(f"log\x00{salt}\x00{user_id}".encode()).hexdigest()[:16]


def traffic_shares(weights: Mapping[str, int], servable: Collection[str] | None = None) -> dict[str, float]:
    """Each version's configured fraction of traffic: its weight over the weights of the routable versions.

    A version is routable when its weight is above 0 and (given ``servable``) it is loaded; the others get 0.
    """
    usable = {v: int(w) for v, w in weights.items() if w > 0 and (servable is None or v in servable)}
    total = sum(usable.values())
    return {v: usable.get(v, 0) / total if total else 0.0 for v in weights}


class Router:
    """Chooses a version among ``weights`` restricted to the versions that can serve."""

    def __init__(self, weights: Mapping[str, int], servable: Collection[str] | None = None) -> None:
        self.weights = dict(weights)
        self.shares = traffic_shares(weights, servable)
        self._versions = [v for v, share in self.shares.items() if share > 0]
        # Edges from the integer weights (not summed float shares), so a boundary never moves by rounding.
        total = sum(int(weights[v]) for v in self._versions)
        running, self._edges = 0, []
        for v in self._versions:
            running += int(weights[v])
            self._edges.append(running / total)

    def choose(self, user_id: str | None = None, *, salt: str = "", rand: Callable[[], float] = random.random) -> str:
        """The version for this request: sticky when ``user_id`` is given, else weighted random."""
        if not self._versions:
            raise NoRoutableModel("no model version with a weight above 0 is loaded")
        point = bucket(salt, user_id) if user_id is not None else rand()
        index = bisect.bisect_right(self._edges, point)
        return self._versions[min(index, len(self._versions) - 1)]

    def share(self, version: str) -> float:
        """The fraction of traffic this version is configured to get among servable versions."""
        return self.shares.get(version, 0.0)


def merge_weights(update: Mapping[str, int], known: list[str], current: Mapping[str, int]) -> dict[str, int]:
    """The full new weights after ``update`` (already well-formed); ValueError for unknown versions or all zero."""
    merged = {v: int(current.get(v, 0)) for v in known}
    for version, weight in update.items():
        if version not in known:
            raise ValueError(f"unknown model version {version!r}; known: {', '.join(known)}")
        merged[version] = weight
    if sum(merged.values()) == 0:
        raise ValueError("at least one weight must be above 0")
    return merged
