"""Per-client rate limits: requests per client (Flask-Limiter) and headline units per client.

A client is its admin token when it sends the right one, else its address (X-Forwarded-For only
behind ISCORE_TRUSTED_PROXIES proxies: anyone can write that header). Counts live in memory per
worker process by default, or in Redis (ISCORE_RATE_LIMIT_STORAGE_URL) to be shared by all
workers and servers. A rate-limit store that fails lets requests through (and logs), rather than
turning a Redis outage into a service outage.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem, parse

from iscore.redact import redact_url
from iscore.settings import Settings
from service.errors import ApiError, error_response

log = logging.getLogger("iscore.limits")

# Routes that probes and scrapers call: never limited, so a busy client cannot make a server look dead.
EXEMPT_ENDPOINTS = frozenset({"meta.healthz", "meta.readyz", "meta.metrics_route", "meta.openapi_route"})
# Headline units: a headline of up to 200 characters is one unit, a longer one one per 200 started
# characters (scoring time grows with text: 55 us for 70 characters, 430 us for 1,000 on the shipped
# model). explain=true triples the cost (explain took 1.3x-3.9x the scoring time, short to long).
UNIT_CHARS = 200
EXPLAIN_FACTOR = 3


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxies: int) -> str:
    """The client's address: REMOTE_ADDR, or the entry ``trusted_proxies`` from the right of X-Forwarded-For."""
    if trusted_proxies > 0 and forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies][:100]
    return remote_addr or "unknown"


def headline_units(texts: Sequence[str], with_explain: bool) -> int:
    """The rate-limit cost of scoring these texts (see UNIT_CHARS and EXPLAIN_FACTOR)."""
    units = sum(max(1, math.ceil(len(t) / UNIT_CHARS)) for t in texts)
    return units * (EXPLAIN_FACTOR if with_explain else 1)


class RateLimits:
    """The two per-client limits of one app."""

    def __init__(self, app: Flask, settings: Settings):
        self.settings = settings
        self.headline_limit: RateLimitItem | None = (
            parse(settings.rate_limit_headlines) if settings.rate_limit_headlines else None)
        self.limiter: Limiter | None = None
        if not settings.rate_limit and self.headline_limit is None:
            return  # both limits off: no Flask-Limiter hooks on every request (about 0.15 ms each)
        redis = settings.rate_limit_storage_url.startswith(("redis", "rediss"))
        self.limiter = Limiter(
            key_func=self.client_key,
            app=app,
            # One budget per client over all routes (default_limits would count each route apart).
            application_limits=[settings.rate_limit] if settings.rate_limit else [],
            strategy="sliding-window-counter",  # O(1) per key and cost, unlike a moving window
            storage_uri=settings.rate_limit_storage_url,
            # A hung Redis must not hang requests: fail fast, then count in memory until it is back.
            storage_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if redis else {},
            in_memory_fallback_enabled=True,
            swallow_errors=True,
            headers_enabled=False,  # Retry-After goes on the 429 only, set below
            key_prefix="iscore",
        )
        self.limiter.request_filter(lambda: request.endpoint in EXEMPT_ENDPOINTS)
        app.register_error_handler(RateLimitExceeded, self._too_many_requests)

    def client_key(self) -> str:
        """The admin token (hashed) when the request carries the right one, else the client address."""
        token = self.settings.admin_token
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        return "addr:" + client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                        self.settings.trusted_proxies)

    def charge_headlines(self, texts: Sequence[str], with_explain: bool) -> None:
        """Count this request's headline units against the client's budget; 429 when it is spent."""
        if self.headline_limit is None or self.limiter is None or not texts:
            return
        units = headline_units(texts, with_explain)
        key = self.client_key()
        try:
            strategy = self.limiter.limiter
            allowed = strategy.hit(self.headline_limit, "headlines", key, cost=units)
            reset_at = None if allowed else strategy.get_window_stats(self.headline_limit, "headlines", key).reset_time
        except Exception as e:  # noqa: BLE001 - the store is down: serve rather than fail
            log.warning("rate-limit store failed; headline budget not applied",
                        extra={"fields": {"error": redact_url(str(e))[:300]}})
            return
        if not allowed:
            retry = _retry_after(reset_at)
            raise ApiError(429, "rate_limited",
                           f"headline budget of {self.settings.rate_limit_headlines} units per client spent "
                           f"(this request: {units} units); retry after {retry} s",
                           {"limit": self.settings.rate_limit_headlines, "request_units": units,
                            "retry_after_seconds": retry},
                           headers={"Retry-After": str(retry)})

    def _too_many_requests(self, e: RateLimitExceeded) -> tuple[Response, int]:
        current = self.limiter.current_limit if self.limiter is not None else None
        reset_at = current.reset_at if current is not None else None
        retry = _retry_after(reset_at)
        resp, status = error_response(429, "rate_limited",
                                      f"more than {self.settings.rate_limit} requests from this client; "
                                      f"retry after {retry} s",
                                      {"limit": self.settings.rate_limit, "retry_after_seconds": retry})
        resp.headers["Retry-After"] = str(retry)
        return resp, status


def _retry_after(reset_at: Any) -> int:
    """Whole seconds until ``reset_at`` (an epoch time), at least 1."""
    if reset_at is None:
        return 1
    return max(1, math.ceil(float(reset_at) - time.time()))
