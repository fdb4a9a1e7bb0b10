"""Feedback loop: validation, idempotent durable storage (SQLite and PostgreSQL), stats, training."""

from __future__ import annotations

import json

import pytest

from iscore import feedback
from tests.conftest import AUTH, assert_error


def test_feedback_is_idempotent_latest_wins_history_kept(fb_client):
    items = [{"id": "a1", "text": "Earthquake kills many", "label": 80, "observed_at": "2026-11-20T10:00:00Z"},
             {"text": "Cute cats", "source": "Site_A", "label": 10, "label_kind": "score"}]
    r = fb_client.post("/v1/feedback", json={"items": items}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"received": 2, "new": 2, "updated": 0}
    again = [{"id": "a1", "text": "Earthquake kills many", "label": 90, "observed_at": "2026-11-21T10:00:00Z"},
             {"text": "  cute   CATS ", "source": "site_a", "label": 15},
             {"id": "a1", "text": "Earthquake kills many", "label": 50, "observed_at": "2026-11-19T10:00:00Z"}]
    r = fb_client.post("/v1/feedback", json={"items": again}, headers=AUTH)
    assert r.get_json() == {"received": 3, "new": 0, "updated": 2}
    eng = fb_client.application.extensions["iscore"]["feedback"].engine()
    rows = {r["text"]: r for r in feedback.read_all(eng)}
    assert len(rows) == 2
    assert rows["Earthquake kills many"]["label"] == 90  # the later observation, not the later request
    assert rows["cute CATS"]["label"] == 15
    stats = fb_client.get("/v1/feedback/stats", headers=AUTH).get_json()
    assert stats["items"] == 2 and stats["submissions"] == 5
    assert {"day": "2026-11-21", "label_kind": "score", "items": 1} in stats["by_day"]


def test_restart_between_write_and_read(make_app, db_url):
    first = make_app(database_url=db_url).test_client()
    assert first.post("/v1/feedback", json={"items": [{"text": "Floods in Kenya", "label": 70}]},
                      headers=AUTH).status_code == 200
    first.application.extensions["iscore"]["feedback"].engine().dispose()
    second = make_app(database_url=db_url).test_client()  # a new process would see the same
    assert second.get("/v1/feedback/stats", headers=AUTH).get_json()["items"] == 1


@pytest.mark.parametrize("item,field", [
    ({"text": "x"}, "label"),
    ({"text": "x", "label": "high"}, "label"),
    ({"text": "x", "label": True}, "label"),
    ({"text": "x", "label": -1}, "label"),
    ({"text": "x", "label": 101}, "label"),
    ({"text": "", "label": 5}, "text"),
    ({"label": 5}, "text"),
    ({"text": "x", "label": 5, "label_kind": "Shares!"}, "label_kind"),
    ({"text": "x", "label": 5, "observed_at": "soon"}, "observed_at"),
    ({"text": "x", "label": 5, "color": "red"}, "items[0]"),
    ({"text": "a" * 1100, "label": 5}, "items[0].text"),
    ({"text": "x", "id": "i" * 300, "label": 5}, "items[0].id"),
])
def test_feedback_validation(client, item, field):
    body = assert_error(client.post("/v1/feedback", json={"items": [item]}, headers=AUTH), 422, "invalid_request")
    assert any(field in p["field"] for p in body["details"])
    assert not any(p["field"].startswith("headlines") for p in body["details"])  # the body has items, not headlines


def test_feedback_engagement_labels_may_exceed_100(client):
    r = client.post("/v1/feedback", json={"items": [{"text": "x", "label": 5000, "label_kind": "shares"}]}, headers=AUTH)
    assert r.status_code == 200


def test_feedback_needs_token(client):
    assert_error(client.post("/v1/feedback", json={"items": [{"text": "x", "label": 1}]}), 401)
    assert_error(client.get("/v1/feedback/stats"), 401)


def test_database_down_is_503_not_500(make_app):
    c = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none").test_client()
    assert_error(c.post("/v1/feedback", json={"items": [{"text": "x", "label": 1}]}, headers=AUTH),
                 503, "feedback_store_unavailable")
    assert c.post("/v1/score", json={"headlines": ["x"]}).status_code == 200  # scoring unaffected


def test_full_loop_score_feedback_retrain_reload(tmp_path, capsys, make_app, data_args):
    """Score, post feedback, retrain with it, promote, and serve the new version after reload."""
    from iscore import registry
    from tests.conftest import make_rows, write_csv
    from training import cli

    reg, db = tmp_path / "models", f"sqlite:///{tmp_path / 'fb.db'}"
    data = write_csv(tmp_path / "base.csv", make_rows(600))
    args = ["--data", str(data), *data_args]
    assert cli.main(["--registry", str(reg), "retrain", *args]) == cli.EXIT_OK
    app = make_app(model_dir=reg, database_url=db)
    c = app.test_client()
    heads = [f"Minister resigns over scandal in {p}" for p in ("Chile", "Kenya", "Ohio", "Paris")] + \
            [f"Best brunch in {p} today" for p in ("Chile", "Kenya", "Ohio", "Paris")]
    first = c.post("/v1/score", json={"headlines": heads}).get_json()
    v1 = first["model_version"]
    # Editors rate the minister stories as very important, the brunch ones as not.
    items = [{"text": h, "label": 95 if "Minister" in h else 5, "observed_at": f"2026-11-2{i % 4}T10:00:00Z"}
             for i, h in enumerate(heads * 10)]
    assert c.post("/v1/feedback", json={"items": items}, headers=AUTH).status_code == 200
    code = cli.main(["--registry", str(reg), "retrain", *args, "--feedback", "--feedback-db", db,
                     "--feedback-weight", "20", "--tolerance", "0.2"])
    assert code == cli.EXIT_OK
    v2 = registry.current_version(reg)
    assert v2 != v1
    m = registry.load_version(reg, v2).manifest
    assert m["data"]["rows"] == {"base": 600, "feedback": 8}
    assert c.post("/v1/admin/reload", headers=AUTH).get_json()["model_version"] == v2
    second = c.post("/v1/score", json={"headlines": heads}).get_json()
    assert second["model_version"] == v2
    gap = lambda r: (sum(s["i_score"] for s in r["scores"][:4]) - sum(s["i_score"] for s in r["scores"][4:])) / 4
    assert gap(second) > gap(first)  # the feedback moved the model the way editors asked


# --- Idempotency-Key (tracker #12 item 9) ---------------------------------------------------------

def test_retried_batch_with_the_same_key_is_stored_once(fb_client):
    body = {"items": [{"id": "k1", "text": "Floods in Kenya", "label": 70},
                      {"text": "Cute cats", "label": 5, "observed_at": "2026-11-20T10:00:00Z"}]}
    headers = {**AUTH, "Idempotency-Key": "batch-2026-11-24-0001"}
    first = fb_client.post("/v1/feedback", json=body, headers=headers)
    assert first.status_code == 200 and first.headers["Idempotent-Replayed"] == "false"
    # the reply was lost; the client retries, even with the keys in another order
    again = fb_client.post("/v1/feedback", data=json.dumps(body, sort_keys=True, indent=1),
                           content_type="application/json", headers=headers)
    assert again.status_code == 200 and again.get_json() == first.get_json() == {"received": 2, "new": 2, "updated": 0}
    assert again.headers["Idempotent-Replayed"] == "true"
    stats = fb_client.get("/v1/feedback/stats", headers=AUTH).get_json()
    assert stats["items"] == 2 and stats["submissions"] == 2  # history counts the batch once
    # without a key, a repeat is a new submission as before
    assert fb_client.post("/v1/feedback", json=body, headers=AUTH).get_json()["updated"] == 2
    assert fb_client.get("/v1/feedback/stats", headers=AUTH).get_json()["submissions"] == 4


def test_same_key_with_another_body_is_409_and_writes_nothing(fb_client):
    headers = {**AUTH, "Idempotency-Key": "0b6f7c3e-5a0e-4d1e-9a57-4f1c1b6a2f10"}
    assert fb_client.post("/v1/feedback", json={"items": [{"text": "A", "label": 1}]}, headers=headers).status_code == 200
    b = assert_error(fb_client.post("/v1/feedback", json={"items": [{"text": "B", "label": 2}]}, headers=headers),
                     409, "idempotency_key_reused")
    assert "Idempotency-Key" in b["message"]
    assert fb_client.get("/v1/feedback/stats", headers=AUTH).get_json()["items"] == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "caf\u00e9"])
def test_malformed_idempotency_keys_are_400(client, key):
    assert_error(client.post("/v1/feedback", json={"items": [{"text": "A", "label": 1}]},
                             headers={**AUTH, "Idempotency-Key": key}), 400, "invalid_header")
