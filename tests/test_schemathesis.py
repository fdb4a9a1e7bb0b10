"""Schemathesis: requests generated from the served OpenAPI document, valid and invalid.

Checks every operation for: no 5xx, responses that match the documented schema and status codes,
and invalid (schema-violating) requests being rejected. ISCORE_FUZZ_EXAMPLES sets the examples per
operation (CI default 100; the reliability run uses 1000).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from iscore.settings import Settings
from tests.conftest import ADMIN_TOKEN, fit_tiny, publish_tiny

EXAMPLES = int(os.environ.get("ISCORE_FUZZ_EXAMPLES", "100"))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    from service.app import create_app

    tmp = tmp_path_factory.mktemp("fuzz")
    reg = tmp / "models"
    publish_tiny(reg, fit_tiny()[0])
    return create_app(Settings(model_dir=Path(reg), admin_token=ADMIN_TOKEN, reload_poll_seconds=0,
                               database_url=f"sqlite:///{tmp / 'fb.db'}", max_headlines=50,
                               max_headline_chars=300))  # default body limit: 413 is tested in test_api


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    yield schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    # How many requests were generated (reported with -s; the README quotes a 1,000-example run).
    text = fuzz_app.test_client().get("/metrics").get_data(as_text=True)
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("iscore_requests_total{"))
    print(f"\nschemathesis sent {total:.0f} requests")


@schema.parametrize()
@hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
