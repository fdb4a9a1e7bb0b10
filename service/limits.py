"""Per-client rate limits: requests per client and headline units per client.

A client is its admin token when it sends the right one, else its address (X-Forwarded-For only
behind ISCORE_TRUSTED_PROXIES proxies: anyone can write that header). Counts live in memory per
worker process by default, or in Redis (ISCORE_RATE_LIMIT_STORAGE_URL) to be shared by all
workers and servers. A rate-limit store that fails is replaced by counting in memory in that worker
(retried with a growing pause), and a failure there too lets requests through (and logs), rather
than turning a Redis outage into a service outage.

The counting is the ``limits`` library's sliding-window counter on its storage, called directly
from one ``before_request`` hook: the same strategy, storage, keys and fallback Flask-Limiter gave
(its keys are kept, so servers of either kind share one Redis's counts), without its per-request
machinery (limit resolution, a request context, an after_request and a teardown hook: about
0.2 ms of the 0.25 ms the limits cost per request, bench/request_costs.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import RateLimiter, SlidingWindowCounterRateLimiter

from iscore.redact import redact_url
from iscore.settings import Settings
from service.errors import ApiError

log = logging.getLogger("iscore.limits")

# Routes that probes and scrapers call: never limited, so a busy client cannot make a server look dead.
EXEMPT_ENDPOINTS = frozenset({"meta.healthz", "meta.readyz", "meta.metrics_route", "meta.openapi_route"})
# Headline units: a headline of up to 200 characters is one unit, a longer one one per 200 started
# characters (scoring time grows with text: 55 us for 70 characters, 430 us for 1,000 on the shipped
# model). explain=true triples the cost (explain took 1.3x-3.9x the scoring time, short to long).
UNIT_CHARS = 200
EXPLAIN_FACTOR = 3
# Storage keys as Flask-Limiter named them (prefix, client, scope): "LIMITER/iscore/<client>/global/..."
# for requests, "LIMITER/headlines/<client>/..." for headline units.
KEY_PREFIX = "iscore"
REQUEST_SCOPE = "global"
HEADLINE_SCOPE = "headlines"
# Set in the WSGI environ by the thin POST /v1/score path (service/thin.py) when it has counted the request,
# or charged its headlines, and then hands the request to Flask after all: counted once, not twice.
REQUEST_COUNTED = "iscore.request_counted"
HEADLINES_CHARGED = "iscore.headlines_charged"
# A failed store is checked again after 1, 2, 4, ... seconds (at most 2**MAX_BACKEND_CHECKS), then from 1 again.
MAX_BACKEND_CHECKS = 5
# In memory, expired counters are dropped when read, and all of them at most this often (on a hit).
SWEEP_SECONDS = 10.0


class _AlwaysAlive:
    """Stands in for MemoryStorage's expiry timer, which therefore never starts again."""

    @staticmethod
    def is_alive() -> bool:
        return True

    @staticmethod
    def cancel() -> None:
        pass


class SweptMemoryStorage(MemoryStorage):
    """limits' MemoryStorage without its expiry thread.

    MemoryStorage starts a ``threading.Timer`` of 10 ms on a hit whenever the last one has fired: while
    requests keep coming, a new thread every 10 ms, the larger part of what counting cost per request
    (bench/request_costs.py). Here expired counters are dropped as MemoryStorage.get drops them (when
    read), and every expired counter by :meth:`sweep`, at most every SWEEP_SECONDS, on a hit: the same
    counts, memory bounded by the clients of the last few windows, and no thread.
    """

    def __init__(self, uri: str | None = None, **options: Any):
        super().__init__(uri, **options)
        self.timer.cancel()  # the one MemoryStorage started
        self.timer = _AlwaysAlive()  # type: ignore[assignment]
        self._next_sweep = time.time() + SWEEP_SECONDS

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            self.sweep(now)
        return super().incr(key, expiry, amount)

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """MemoryStorage.acquire_sliding_window_entry step for step (the same clock reads, counts, expiries and
        locks), with its get and incr written out: through the library each hit ran about ten wrapper and
        method frames (limits wraps every storage method to translate its errors; memory counting raises none
        of them), most of what a hit cost (bench/request_costs.py)."""
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_count = self._count(previous_key)
        current_count = self._count(current_key)
        previous_ttl = 0.0 if previous_count == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        weighted_count = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted_count) + amount > limit:
            return False
        # incr(current_key, 2 * expiry, amount): the sweep, MemoryStorage.incr's read, then the count under its lock.
        at = time.time()
        if at >= self._next_sweep:
            self._next_sweep = at + SWEEP_SECONDS
            self.sweep(at)
        self._count(current_key)
        storage = self.storage
        with self.locks[current_key]:
            storage[current_key] += amount
            if storage[current_key] == amount:
                self.expirations[current_key] = time.time() + 2 * expiry
        current_count = storage.get(current_key, 0)
        weighted_count = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted_count) > limit:
            # Another hit won the race: as the library, take this one back and refuse it.
            self.decr(current_key, amount)
            return False
        return True

    def _count(self, key: str) -> int:
        """MemoryStorage.get: a counter's value, 0 (and dropped) once expired."""
        if self.expirations.get(key, 0) <= time.time():
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)
        return self.storage.get(key, 0)

    def sweep(self, now: float) -> int:
        """Drop every counter expired at ``now``; how many were dropped."""
        dropped = 0
        for key, at in list(self.expirations.items()):
            if at <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)
                dropped += 1
        return dropped


def _storage(url: str, **options: Any) -> Storage:
    """The counters' storage for ISCORE_RATE_LIMIT_STORAGE_URL."""
    return SweptMemoryStorage() if url.startswith("memory://") else storage_from_string(url, **options)


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
    """The two per-client limits of one app, counted on one storage (in memory when it fails)."""

    def __init__(self, app: Flask, settings: Settings):
        self.settings = settings
        self.request_limit: RateLimitItem | None = parse(settings.rate_limit) if settings.rate_limit else None
        self.headline_limit: RateLimitItem | None = (
            parse(settings.rate_limit_headlines) if settings.rate_limit_headlines else None)
        self.enabled = self.request_limit is not None or self.headline_limit is not None
        if not self.enabled:
            return  # both limits off: no hook on any request
        redis = settings.rate_limit_storage_url.startswith(("redis", "rediss"))
        # A hung Redis must not hang requests: fail fast, then count in memory until it is back.
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if redis else {}
        self.storage: Storage = _storage(settings.rate_limit_storage_url, **options)
        self._strategy: RateLimiter = SlidingWindowCounterRateLimiter(self.storage)
        self._fallback: RateLimiter = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self._storage_dead = False
        self._lock = threading.Lock()
        self._last_check = 0.0
        self._checks = 0
        if self.request_limit is not None:
            # After install_hooks' before_request, so a refused request still has its request id and timing.
            app.before_request(self._check_request)

    @property
    def strategy(self) -> RateLimiter:
        """The counting in use: the configured storage's, or the in-memory one while that storage is down."""
        if self._storage_dead:
            self._maybe_recovered()
        return self._fallback if self._storage_dead else self._strategy

    def _maybe_recovered(self) -> None:
        """While the store is down, ask it again after a pause that doubles each time (1, 2, 4 ... 32 s)."""
        now = time.time()
        with self._lock:
            if self._checks > MAX_BACKEND_CHECKS:
                self._checks = 0
            if now - self._last_check <= 2 ** self._checks:
                return
            self._last_check = now
            self._checks += 1
        try:
            ok = self.storage.check()
        except Exception:  # noqa: BLE001 - still down
            ok = False
        if ok:
            log.info("rate-limit store recovered")
            self._storage_dead = False
            self._checks = 0

    def _hit(self, item: RateLimitItem, identifiers: tuple[str, ...], cost: int) -> tuple[bool, float | None]:
        """Count ``cost`` against ``item``; (allowed, reset time when refused). A failing store falls back
        to memory once, and a failure there raises."""
        strategy = self.strategy
        try:
            allowed = strategy.hit(item, *identifiers, cost=cost)
            return allowed, None if allowed else strategy.get_window_stats(item, *identifiers).reset_time
        except Exception as e:
            if strategy is self._fallback:
                raise
            log.warning("rate-limit store unreachable; counting in memory in this worker",
                        extra={"fields": {"error": redact_url(str(e))[:300]}})
            with self._lock:
                self._storage_dead = True
                self._last_check = time.time()
            allowed = self._fallback.hit(item, *identifiers, cost=cost)
            return allowed, None if allowed else self._fallback.get_window_stats(item, *identifiers).reset_time

    def _spend(self, item: RateLimitItem, identifiers: tuple[str, ...], cost: int, what: str) -> int | None:
        """Seconds to wait when ``cost`` does not fit the budget, else None (also when both the store and the
        memory fallback fail: logged, and the request is served rather than failed)."""
        try:
            allowed, reset_at = self._hit(item, identifiers, cost)
        except Exception as e:  # noqa: BLE001 - serve rather than fail
            log.warning(f"rate-limit store failed; {what} not applied",
                        extra={"fields": {"error": redact_url(str(e))[:300]}})
            return None
        return None if allowed else _retry_after(reset_at)

    def _check_request(self) -> None:
        """before_request: count the request against its client's budget; 429 when it is spent."""
        if REQUEST_COUNTED in request.environ:
            return
        endpoint = request.endpoint
        # No endpoint (404, 405), probes, scrapers and static files are never counted.
        if not endpoint or endpoint in EXEMPT_ENDPOINTS or endpoint.rpartition(".")[2] == "static":
            return
        self.check_request(self.client_key())

    def check_request(self, key: str) -> None:
        """Count one request of client ``key``; ApiError 429 (with Retry-After) when its budget is spent."""
        if self.request_limit is None:
            return
        retry = self._spend(self.request_limit, (KEY_PREFIX, key, REQUEST_SCOPE), 1, "request limit")
        if retry is not None:
            raise ApiError(429, "rate_limited",
                           f"more than {self.settings.rate_limit} requests from this client; retry after {retry} s",
                           {"limit": self.settings.rate_limit, "retry_after_seconds": retry},
                           headers={"Retry-After": str(retry)})

    def client_key(self) -> str:
        """The admin token (hashed) when the request carries the right one, else the client address."""
        return self.client_key_of(request.environ)

    def client_key_of(self, environ: dict[str, Any]) -> str:
        """:meth:`client_key` of a WSGI environ."""
        token = self.settings.admin_token
        auth = environ.get("HTTP_AUTHORIZATION")
        if token and auth:
            scheme, _, given = auth.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
                return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        return "addr:" + client_address(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"),
                                        self.settings.trusted_proxies)

    def charge_headlines(self, texts: Sequence[str], with_explain: bool) -> None:
        """Count this request's headline units against the client's budget; 429 when it is spent."""
        if self.headline_limit is None or not texts or HEADLINES_CHARGED in request.environ:
            return
        self.charge_units(self.client_key(), headline_units(texts, with_explain))

    def charge_units(self, key: str, units: int) -> None:
        """Count ``units`` headline units of client ``key``; ApiError 429 when its budget is spent."""
        if self.headline_limit is None:
            return
        retry = self._spend(self.headline_limit, (HEADLINE_SCOPE, key), units, "headline budget")
        if retry is not None:
            raise ApiError(429, "rate_limited",
                           f"headline budget of {self.settings.rate_limit_headlines} units per client spent "
                           f"(this request: {units} units); retry after {retry} s",
                           {"limit": self.settings.rate_limit_headlines, "request_units": units,
                            "retry_after_seconds": retry},
                           headers={"Retry-After": str(retry)})


def _retry_after(reset_at: Any) -> int:
    """Whole seconds until ``reset_at`` (an epoch time), at least 1."""
    if reset_at is None:
        return 1
    return max(1, math.ceil(float(reset_at) - time.time()))
