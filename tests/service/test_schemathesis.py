"""Schemathesis: requests generated from the served OpenAPI document, valid and invalid.

Checks every operation for: no 5xx, responses that match the documented schema and status codes,
and invalid (schema-violating) requests being rejected. ISCORE_FUZZ_EXAMPLES sets the examples per
operation (CI default 100; the reliability run uses 1000). Every operation runs on SQLite with the
admin token; the database-backed ones (/v1/feedback, /v1/feedback/stats, /v1/admin/reload) run again
on PostgreSQL with a quarter of the examples (skipped with the reason when none answers; CI has one).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from iscore.settings import Settings
from tests.conftest import ADMIN_TOKEN, AUTH, empty_feedback_tables, fit_tiny, publish_tiny

EXAMPLES = int(os.environ.get("ISCORE_FUZZ_EXAMPLES", "100"))
DB_ROUTES = r"^/v1/(feedback|admin/)"


def _fuzz_app(tmp: Path, database_url: str):
    from service.app import create_app

    reg = tmp / "models"
    publish_tiny(reg, fit_tiny()[0])
    # Module-scoped (one app per fuzz run), so not the function-scoped make_app fixture.
    # default body limit: 413 is tested in test_app; rate limits off: they are tested in test_limits
    return create_app(Settings(model_dir=Path(reg), admin_token=ADMIN_TOKEN, reload_poll_seconds=0,
                               state_dir=tmp / "state",  # the pages' store: not the repository's var/
                               database_url=database_url, max_headlines=50, max_headline_chars=300,
                               rate_limit="", rate_limit_headlines=""))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    return _fuzz_app(tmp, f"sqlite:///{tmp / 'fb.db'}")


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    yield schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    # How many requests were generated (reported with -s; the README quotes a 1,000-example run).
    text = fuzz_app.test_client().get("/metrics").get_data(as_text=True)
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("iscore_requests_total{"))
    print(f"\nschemathesis sent {total:.0f} requests")


@pytest.mark.slow
@schema.parametrize()
@hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case):
    case.call_and_validate(headers=AUTH)


pg_schema = schemathesis.pytest.from_fixture("fuzz_schema_pg")


@pytest.fixture(scope="module")
def fuzz_schema_pg(tmp_path_factory, pg_url):
    app = _fuzz_app(tmp_path_factory.mktemp("fuzz-pg"), empty_feedback_tables(pg_url))
    yield schemathesis.openapi.from_wsgi("/openapi.json", app).include(path_regex=DB_ROUTES)


@pytest.mark.slow
@pytest.mark.postgres
@pg_schema.parametrize()
@hsettings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract_on_postgresql(case):
    case.call_and_validate(headers=AUTH)
