"""Fixtures of the UI tests: the fake API, with the page's settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui.fake_api import FakeApi


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """A running fake API, with API_URL pointing at it and the default timeout."""
    api = FakeApi()
    api.start()
    monkeypatch.setenv("API_URL", api.url)
    monkeypatch.delenv("API_TIMEOUT_SECONDS", raising=False)
    yield api
    api.stop()
