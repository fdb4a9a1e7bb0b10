"""Fixtures of the service tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture()
def fb_client(make_app, db_url):
    """A test client whose feedback store is ``db_url``: runs on SQLite, then on PostgreSQL."""
    return make_app(database_url=db_url).test_client()
