"""The editor's desk (issue #17): the window's stories with scores, coverage and explanations; pin, hide or boost
a story for a time (audit list); thumbs up/down as feedback for the next retrain.

Sign-in is a form (editor name + ``ISCORE_ADMIN_TOKEN``) that sets a signed session cookie (HttpOnly,
SameSite=Strict; its key is derived from the admin token, so changing the token signs everyone out); the
token never appears in a URL. Every form post carries a CSRF token kept in the session. Templates escape
every value (Jinja2 autoescape), so a headline with ``<script>`` is shown as text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Flask, Response, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from iscore import feedback
from iscore import overrides as ov
from iscore.scoring import explain, model_record
from iscore.settings import Settings
from service.context import services
from service.errors import ApiError
from service.pages import _page_error, html_page, page_csp, pages, safe_url, store_errors
from service.schema import parse_feedback
from service.top import serving_blend

log = logging.getLogger("iscore.editor")
bp = Blueprint("editor", __name__)
bp.register_error_handler(Exception, _page_error)
DESK_LIMIT = 50
SESSION_HOURS = 8


class EditorSession(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the cookie marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured or when this request is HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def configure(app: Flask, settings: Settings) -> None:
    """Session cookie settings; the signing key is derived from the admin token (no token: desk off)."""
    if settings.admin_token:
        app.secret_key = hmac.new(settings.admin_token.encode(), b"iscore editor session v1", hashlib.sha256).digest()
    app.config.update(SESSION_COOKIE_NAME="iscore_editor", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/editor",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    app.session_interface = EditorSession()


def _desk_on() -> None:
    """403 page unless an admin token is configured."""
    g.page_csp = page_csp(forms=True)
    if not services().settings.admin_token:
        raise ApiError(403, "editor_disabled", "the editor's desk is off: set ISCORE_ADMIN_TOKEN to enable it")


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def _check_csrf() -> None:
    """403 unless the form's csrf field matches the session's token."""
    given = request.form.get("csrf", "")
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise ApiError(403, "csrf_failed", "the form has expired or did not come from this site; reload the desk "
                                           "and try again")


def _editor() -> str | None:
    """The signed-in editor's name, or None."""
    who = session.get("who")
    return str(who) if who and session.get("auth") else None


def _require_editor() -> str:
    """The signed-in editor (after the CSRF check of a form post); 401 page otherwise."""
    _desk_on()
    _check_csrf()
    who = _editor()
    if who is None:
        raise ApiError(401, "unauthorized", "sign in at /editor first")
    return who


def readable(why: dict[str, list[dict[str, Any]]]) -> str:
    """An explanation as a sentence: "raised by kills, earthquake; lowered by quiz"."""
    def names(entries: list[dict[str, Any]]) -> str:
        return ", ".join(str(e["feature"]) for e in entries)

    parts = []
    if why.get("up"):
        parts.append("raised by " + names(why["up"]))
    if why.get("down"):
        parts.append("lowered by " + names(why["down"]))
    return "; ".join(parts) or "no single feature stands out"


@bp.get("/editor")
def desk() -> Response:
    """The desk (signed in) or the sign-in form."""
    _desk_on()
    token = csrf_token()
    who = _editor()
    if who is None:
        return html_page("login.html", csrf=token, error=request.args.get("failed") == "1")
    s = services()
    p = pages()
    model = s.holder.get()
    if model is None:
        raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz")
    g.model_version = model.version
    window = s.settings.sidebar_window_minutes
    now = datetime.now(timezone.utc)
    with store_errors():
        stories = p.provider(window, DESK_LIMIT)
        active = p.overrides.active(now)
        audit = p.overrides.history(limit=100)
    shown = {str(st["story_id"]): st["rank"] for st in ov.apply(stories, active, now, 10)}
    records = [model_record(st["headline"], (st.get("sources") or [None])[0]) for st in stories]
    blend = serving_blend(model.pipeline, s.settings.blend)
    whys = explain(model.pipeline, records, s.settings.explain_top, blend=blend, scorer=model.scorer) if records else []
    by_story: dict[str, list[ov.Override]] = {}
    for o in active:
        by_story.setdefault(o.story_id, []).append(o)
    rows = [{**st, "safe_url": safe_url(st.get("url")), "why": readable(why),
             "sidebar_rank": shown.get(str(st["story_id"])), "active": by_story.get(str(st["story_id"]), [])}
            for st, why in zip(stories, whys)]
    return html_page("editor.html", csrf=token, who=who, rows=rows, window=window,
                     audit=audit, model_version=model.version,
                     max_minutes=ov.MAX_MINUTES, max_boost=ov.MAX_BOOST, notice=request.args.get("done"))


@bp.post("/editor/login")
def login() -> Response:
    """Check the admin token from the form; on success start a session as the named editor."""
    _desk_on()
    _check_csrf()
    who = request.form.get("who", "").strip()
    token = request.form.get("token", "").strip()
    expected = services().settings.admin_token
    if not who or len(who) > ov.MAX_WHO_CHARS or not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("editor sign-in refused")
        return redirect(url_for("editor.desk", failed=1), code=303)
    session.clear()
    session.permanent = True
    session.update({"who": who, "auth": True, "csrf": secrets.token_urlsafe(24)})
    return redirect(url_for("editor.desk"), code=303)


@bp.post("/editor/logout")
def logout() -> Response:
    """End the session."""
    _desk_on()
    _check_csrf()
    session.clear()
    return redirect(url_for("editor.desk"), code=303)


def _number(name: str) -> float | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_form", f"{name} must be a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ApiError(400, "invalid_form", f"{name} must be a finite number")
    return value


@bp.post("/editor/action")
def action() -> Response:
    """Pin, hide, boost or clear a story for a time; recorded with who and when."""
    who = _require_editor()
    try:
        with store_errors():
            o = pages().overrides.add(request.form.get("action", ""), request.form.get("story_id", "").strip(),
                                      who=who, minutes=_number("minutes"), boost=_number("boost"),
                                      headline=request.form.get("headline", "")[:1000])
    except ov.OverrideError as e:
        raise ApiError(400, "invalid_form", str(e)) from None
    log.info("editor override", extra={"fields": {"action": o.action, "story_id": o.story_id, "who": o.who}})
    return redirect(url_for("editor.desk", done=o.action), code=303)


@bp.post("/editor/feedback")
def vote() -> Response:
    """Thumbs up (label 100) or down (label 0) on a story's headline, stored as editor feedback (label_kind score)."""
    _require_editor()
    s = services()
    value = {"up": 100, "down": 0}.get(request.form.get("vote", ""))
    if value is None:
        raise ApiError(400, "invalid_form", "vote must be up or down")
    item: dict[str, Any] = {"text": request.form.get("headline", ""), "label": value, "label_kind": "score"}
    if request.form.get("source"):
        item["source"] = request.form["source"]
    batch = parse_feedback({"items": [item]}, s.limits)  # the /v1/feedback rules (422 page on a bad item)
    s.feedback.call(lambda engine: feedback.store(engine, batch))
    return redirect(url_for("editor.desk", done="feedback"), code=303)
