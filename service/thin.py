"""A thin WSGI path for ``POST /v1/score``, in front of Flask.

An ordinary scoring request (no query string, a JSON body with a Content-Length within the limit,
headlines that validate, a loaded model, budget left) is answered here, without Flask's request
context, routing, hooks and response object: the same functions read, validate, count and score it
(service.body.read_body, service.schema.parse_json_body and parse_score, service.limits.RateLimits,
iscore.scoring.reply_items) and the same :class:`service.observability.Replies` give it its headers,
metric sample and access-log line, so the reply is byte for byte the one Flask would give
(tests/service/test_thin.py checks that on generated bodies).

Anything else goes to Flask untouched, and so does every request the thin path would refuse: an
error reply is always Flask's. A body read here is handed on in the environ (a failure to read it as
the error the view raises where it would have read it); a request or headline budget counted here is
marked so that Flask does not count it twice. The path switches itself off, with a log line, when
the app has request hooks or a JSON setting it does not reproduce.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from json import JSONEncoder
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from iscore.model import blends
from iscore.registry import LoadedModel
from iscore.scoring import reply_items
from service.body import BODY_ERROR, BODY_JSON, read_body
from service.errors import SECURITY_HEADERS, ApiError
from service.limits import HEADLINES_CHARGED, REQUEST_COUNTED, headline_units
from service.observability import Replies
from service.schema import parse_blend, parse_json_body, parse_score

log = logging.getLogger("iscore.app")

PATH = "/v1/score"
ENDPOINT = "scoring.score_route"
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json_type(content_type: str | None) -> bool:
    """service.schema.require_json's test: the media type is application/json or ends in +json."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


def unsupported(app: Flask, replies: Replies) -> str | None:
    """Why the thin path cannot stand in for Flask on this app, or None when it can."""
    before, after = app.before_request_funcs, app.after_request_funcs
    services = app.extensions.get("iscore")
    known_before = [replies.hooks[0]]
    if services is not None and services.rate_limits.request_limit is not None:
        known_before.append(services.rate_limits._check_request)
    if services is None:
        return "the app has no i-Score services"
    if dict(before) != {None: known_before} or ENDPOINT.split(".")[0] in before:
        return "the app has before_request hooks the thin path does not run"
    # pages' hook only touches its own paths, the JSON feed and static files (service/pages.py _page_headers).
    from service.pages import _page_headers

    if dict(after) not in ({None: [replies.hooks[1]]}, {None: [replies.hooks[1], _page_headers]}):
        return "the app has after_request hooks the thin path does not run"
    if any(app.teardown_request_funcs.values()) or any(app.url_value_preprocessors.values()):
        return "the app has teardown or URL hooks the thin path does not run"
    rules = [r for r in app.url_map.iter_rules() if r.rule == PATH]
    if [r.endpoint for r in rules] != [ENDPOINT]:
        return f"{PATH} is not served by {ENDPOINT} alone"
    return None


_ITEM_KEYS = ("id", "text", "i_score", "tier", "flags")  # a reply item without explain (iscore.scoring.reply_items)


def _items_json(items: list[dict[str, Any]], string: Callable[[str], str]) -> str | None:
    """The compact JSON of reply items as json's encoder writes them (``string`` its str encoder), or None when
    an item has another shape or a field another type (the encoder then writes them all)."""
    out = []
    for item in items:
        if type(item) is not dict or tuple(item) != _ITEM_KEYS:
            return None
        hid, text, score, tier, flags = item["id"], item["text"], item["i_score"], item["tier"], item["flags"]
        if (type(hid) is not str or type(text) is not str or type(score) is not float or score - score != 0.0
                or type(tier) is not str or type(flags) is not list or any(type(f) is not str for f in flags)):
            return None
        out.append(f'{{"id":{string(hid)},"text":{string(text)},"i_score":{float.__repr__(score)},'
                   f'"tier":{string(tier)},"flags":[{",".join(map(string, flags))}]}}')
    return "[" + ",".join(out) + "]"


class ThinScore:
    """WSGI middleware answering ordinary ``POST /v1/score`` requests; Flask answers everything else."""

    def __init__(self, app: Flask, replies: Replies):
        self.app = app
        self.flask: Wsgi = app.wsgi_app
        self.replies = replies
        self.served = 0  # requests answered here (tests check the path is taken)
        self._blend: tuple[LoadedModel | None, str] = (None, "")
        self._encoder: tuple[tuple[Any, ...] | None, Callable[[Any], str]] = (None, str)  # (settings, encode)
        self._heads: dict[tuple[str, str], str] = {}  # the reply's text before its items, per model version and blend

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST"
                or environ.get("QUERY_STRING")):
            return self.flask(environ, start_response)
        t0 = time.perf_counter()
        try:
            reply = self._answer(environ, t0)
        except Exception:  # noqa: BLE001 - a fault of this path is never the client's reply: Flask answers
            log.exception("thin path failed; Flask answers the request")
            reply = None
        if reply is None:
            return self.flask(environ, start_response)
        headers, body = reply
        start_response("200 OK", headers)
        self.served += 1
        return [body]

    def _default_blend(self, model: LoadedModel) -> str:
        """parse_blend's answer without a ?blend= (the configured default, if the model has it), per model."""
        known, blend = self._blend
        if known is not model:
            blend = parse_blend(None, blends(model.pipeline), self.app.extensions["iscore"].settings.blend)
            self._blend = (model, blend)
        return blend

    def _dumps(self, version: str, blend: str, items: list[dict[str, Any]]) -> str:
        """``jsonify``'s text of the reply: ``app.json.dumps`` compact (or indented in debug). With Flask's default
        provider the encoder is made once for its settings (json.dumps makes one per call), and unless it sorts
        keys the reply is written as that encoder writes it: the part before the items once per model and blend,
        each item of the usual shape from its five fields (_items_json)."""
        app = self.app
        provider = app.json
        compact = provider.compact
        reply = {"model_version": version, "blend": blend, "scores": items}
        if (compact is None and app.debug) or compact is False:
            return provider.dumps(reply, indent=2)
        if type(provider) is not DefaultJSONProvider:
            return provider.dumps(reply, separators=(",", ":"))
        settings = (provider.default, provider.ensure_ascii, provider.sort_keys)
        made, encode = self._encoder
        if made != settings:
            # json.dumps(reply, default=..., ensure_ascii=..., sort_keys=..., separators=...) builds this encoder.
            encode = JSONEncoder(default=settings[0], ensure_ascii=settings[1], sort_keys=settings[2],
                                 separators=(",", ":")).encode
            self._encoder = (settings, encode)
            self._heads.clear()
        if settings[2] or type(version) is not str or type(blend) is not str:
            return encode(reply)
        string = encode_basestring_ascii if settings[1] else encode_basestring
        scores = _items_json(items, string)
        if scores is None:
            return encode(reply)
        head = self._heads.get((version, blend))
        if head is None:
            if len(self._heads) >= 16:
                self._heads.clear()
            head = self._heads[(version, blend)] = f'{{"model_version":{string(version)},"blend":{string(blend)},"scores":'
        return head + scores + "}"

    def _answer(self, environ: dict[str, Any], t0: float) -> tuple[list[tuple[str, str]], bytes] | None:
        """The reply's headers and body, or None to let Flask answer (the environ then says what was done)."""
        s = self.app.extensions["iscore"]
        settings = s.settings
        content_type = environ.get("CONTENT_TYPE")
        length = environ.get("CONTENT_LENGTH") or ""
        if not _json_type(content_type) or not (length.isascii() and length.isdigit()):
            return None  # Flask's 415, or a body without a plain Content-Length
        if not 0 < int(length) <= settings.max_body_bytes:
            return None  # Flask's 413 or 422, before reading
        limits = s.rate_limits
        if limits.enabled:
            # Before the body is read or parsed, as Flask's hook does: a client over its budget must not
            # cost a parse (a 2 MB nested body held a gevent worker for 1.5 s before its 429).
            key = limits.client_key_of(environ)
            try:
                limits.check_request(key)
            except ApiError:
                return None  # Flask counts again (a refused hit counts nothing) and answers 429 unread
            environ[REQUEST_COUNTED] = True
        try:
            raw = read_body(environ, settings.max_body_bytes, settings.body_timeout_seconds)
        except Exception as e:  # noqa: BLE001 - an ApiError, or whatever the view would meet reading it
            environ[BODY_ERROR] = e  # the view raises it where it would have read the body
            return None
        environ["wsgi.input"] = io.BytesIO(raw)  # the same body for Flask, if it answers after all
        try:
            data = parse_json_body(raw, content_type)
        except Exception as e:  # noqa: BLE001 - the view would meet the same error parsing the same bytes
            environ[BODY_ERROR] = e
            return None
        environ[BODY_JSON] = data  # a refusal below is Flask's to answer, without parsing again
        try:
            heads = parse_score(data, s.limits, False)
        except Exception:  # noqa: BLE001 - a refusal (or a fault) is Flask's to answer
            return None
        model = s.holder.get()
        if model is None:
            return None  # Flask's 503
        blend = self._default_blend(model)
        if limits.enabled:
            if limits.headline_limit is not None and heads:
                try:
                    limits.charge_units(key, headline_units([h.text for h in heads], False))
                except ApiError:
                    return None
                environ[HEADLINES_CHARGED] = True
        try:
            items = reply_items(model.pipeline, [(h.id, h.text, h.source) for h in heads],
                                red_threshold=settings.red_threshold, explain_top=settings.explain_top,
                                with_explain=False, blend=blend, scorer=model.scorer)
        except Exception:  # noqa: BLE001 - Flask scores again and answers (and logs) whatever it is
            return None
        s.metrics.headlines.inc(len(heads))
        app = self.app
        body = (self._dumps(model.version, blend, items) + "\n").encode()
        replies = self.replies
        request_id = replies.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        headers = [("Content-Type", app.json.mimetype), ("Content-Length", str(len(body))),
                   ("X-Request-ID", request_id), ("X-Model-Version", model.version), *SECURITY_HEADERS.items()]
        replies.record(PATH, "POST", PATH, 200, time.perf_counter() - t0, request_id, model.version, len(heads))
        return headers, body


def install(app: Flask, replies: Replies) -> ThinScore | None:
    """Put the thin path in front of ``app`` (last, once every hook is registered); None when it cannot."""
    reason = unsupported(app, replies)
    if reason is not None:
        log.warning("POST /v1/score through Flask only: no thin path", extra={"fields": {"reason": reason}})
        return None
    thin = ThinScore(app, replies)
    app.wsgi_app = thin  # type: ignore[method-assign]
    return thin
