"""Admin blueprint: /v1/admin/reload, and the bearer-token check the admin routes share."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, g, jsonify, request

from iscore.registry import ArtifactError
from service.context import services
from service.errors import ApiError

# RFC 6750: a 401 names the scheme it wants, and says when the token sent was wrong.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="iscore"'}
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="iscore", error="invalid_token"'}
bp = Blueprint("admin", __name__)


def require_admin() -> None:
    """Raise 403 when admin routes are off, 401 unless the request carries the admin token."""
    token = services().settings.admin_token
    if not token:
        raise ApiError(403, "admin_disabled", "admin routes are off: set ISCORE_ADMIN_TOKEN to enable them")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <ISCORE_ADMIN_TOKEN>'", headers=CHALLENGE)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "wrong token", headers={**CHALLENGE, **INVALID_TOKEN})


@bp.post("/v1/admin/reload")
def reload_route() -> Any:
    """Load the version CURRENT names; a refused version leaves the last good one serving (409)."""
    require_admin()
    s = services()
    before = s.holder.get()
    try:
        model = s.holder.reload()
    except ArtifactError as e:
        serving = s.holder.get()
        raise ApiError(409, "reload_failed", "the version CURRENT names was refused; the last good model serves",
                       {"reason": s.public(str(e)), "serving": serving.version if serving else None}) from None
    g.model_version = model.version
    return jsonify({"model_version": model.version, "previous_version": before.version if before else None})
