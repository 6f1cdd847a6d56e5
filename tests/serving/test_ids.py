"""Prediction ids: UUIDv7, time-ordered, unguessable, and recognised as recent only by their own clock."""

from __future__ import annotations

import time
import uuid

from app.serving.ids import is_uuid, issued_within, new_prediction_ids


def test_ids_are_uuid7_time_ordered_and_distinct():
    first = new_prediction_ids(500, 1_700_000_000.0)
    later = new_prediction_ids(1, 1_700_000_001.0)[0]
    assert len(set(first)) == 500 and all(uuid.UUID(i).version == 7 for i in first)
    assert all(i < later for i in first)
    assert all(is_uuid(i) for i in first)


def test_issued_within_reads_the_id_clock():
    assert issued_within(new_prediction_ids(1, time.time())[0], 5)
    assert not issued_within(new_prediction_ids(1, time.time() - 60)[0], 5)
    assert issued_within(new_prediction_ids(1, time.time() - 60)[0], 600)
    assert not issued_within(new_prediction_ids(1, time.time() + 30)[0], 600)  # from the future: not ours
    assert not issued_within(str(uuid.uuid4()), 600) and not issued_within("not-an-id", 600)
    assert not is_uuid("019AB4C2-5E1D-7C3A-9F2E-4B6D8A1C3E5F")  # not canonical
