"""Feedback tokens: proof that whoever labels a prediction received it.

Each prediction id is answered with ``HMAC-SHA256(key, prediction_id)`` (128 bits, base64url). The key is
a per-install secret in the state store, so every worker and host issues and checks the same tokens, and
nobody without a response in hand can label (or flood) someone else's predictions. Because the id is a
UUIDv7 the token also vouches for the time inside it: a verified id's timestamp was chosen by us.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

TOKEN_BYTES = 16


class FeedbackTokens:
    """Issues and verifies feedback tokens under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, prediction_ids: Sequence[str]) -> list[str]:
        """One token per prediction id."""
        key = self._key
        return [_encode(hmac.digest(key, pid.encode(), "sha256")[:TOKEN_BYTES]) for pid in prediction_ids]

    def verify(self, prediction_id: str, token: str) -> bool:
        """Whether ``token`` is the one issued for ``prediction_id`` (constant time)."""
        expected = self.issue([prediction_id])[0]
        return hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
