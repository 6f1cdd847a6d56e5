"""Prediction ids: UUIDv7 (RFC 9562), unguessable and time-ordered."""

from __future__ import annotations

import os
import time
import uuid


def new_prediction_ids(n: int, now: float) -> list[str]:
    """n UUIDv7 ids: random, and time-ordered so the log's unique index grows at its end."""
    stamp = int(now * 1000).to_bytes(6, "big")
    entropy = os.urandom(10 * n)
    ids = []
    for i in range(n):
        raw = bytearray(stamp + entropy[10 * i : 10 * i + 10])
        raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def is_uuid(text: str) -> bool:
    """Whether ``text`` is a UUID in its canonical lower-case form."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def issued_within(text: str, seconds: float) -> bool:
    """A UUIDv7 whose timestamp is within the last ``seconds`` (a second of clock skew allowed ahead)."""
    if not is_uuid(text) or text[14] != "7":
        return False
    issued_ms = int(text[:8] + text[9:13], 16)
    return -1000 <= time.time() * 1000 - issued_ms <= seconds * 1000
