"""One rule for query strings: the story routes (/v1/top, /v1/sidebar.json, /sidebar), /v1/score and /v1/rank.

An unknown parameter or an invalid value is a 422 ``invalid_request`` in the error shape of every route, whose
``details`` list each problem as ``{"field": <parameter>, "problem": ..., "got": <value, cut to 50 characters>}``
(the same ``field``/``problem`` entries as a body's 422), and whose message names the parameter and its bounds in
the parameter's own units. Every problem of the query is listed, not only the first. ``/v1/score`` and
``/v1/rank`` follow the same rule for their two parameters, ``explain`` and ``blend`` (service/scoring.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from service.errors import ApiError

MAX_GOT = 50
_WHOLE = re.compile(r"[0-9]{1,9}")


def _fmt(x: float) -> str:
    return f"{x:g}"


class QueryArgs:
    """Read a request's query parameters, collecting problems; :meth:`check` raises them as one 422."""

    def __init__(self, args: Any, known: Iterable[str]) -> None:
        """``args`` a MultiDict (request.args); any parameter not in ``known`` is a problem."""
        self.args = args
        self.known = tuple(sorted(known))
        self.problems: list[dict[str, str]] = []
        for name in sorted(set(args) - set(self.known)):
            self._problem(name[:MAX_GOT], f"is not a parameter of this route; use {', '.join(self.known)}",
                          args.get(name))

    def _single(self, name: str) -> str | None:
        """The one value of a single-valued parameter (None when absent); given twice is a problem, not a guess."""
        values = self.args.getlist(name)
        if len(values) > 1:
            self._problem(name, f"is given {len(values)} times; give it once", ", ".join(values))
            return None
        return values[0] if values else None

    def _problem(self, name: str, problem: str, got: str | None) -> None:
        self.problems.append({"field": name, "problem": problem, "got": (got or "")[:MAX_GOT]})

    def whole(self, name: str, default: int, low: int, high: int, unit: str = "") -> int:
        """A whole number within [low, high] ("5" or "05"; no sign, point or exponent); ``default`` if absent."""
        raw = self._single(name)
        if raw is None:
            return default
        if not _WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
            what = f"whole number of {unit}" if unit else "whole number"
            self._problem(name, f"must be a {what} from {low} to {high}", raw)
            return default
        return int(raw)

    def number(self, name: str, default: float, high: float, unit: str, why_high: str = "") -> float:
        """A number above 0 and at most ``high`` (in ``unit``); ``default`` if absent."""
        raw = self._single(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 < value <= high:  # NaN and infinities fail too
            bound = f"at most {_fmt(high)} {unit}" + (f" ({why_high})" if why_high else "")
            self._problem(name, f"must be a number of {unit} above 0 and {bound}", raw)
            return default
        return value

    def choice(self, name: str, read: Any) -> Any:
        """``read(raw)`` of a parameter (None when absent); an ApiError it raises becomes this query's problem."""
        raw = self._single(name)
        try:
            return read(raw)
        except ApiError as e:
            self.problems.extend(e.details if isinstance(e.details, list) else
                                 [{"field": name, "problem": e.message, "got": (raw or "")[:MAX_GOT]}])
            return None

    def texts(self, name: str, max_chars: int) -> list[str]:
        """Every value of a repeatable text parameter, each at most ``max_chars`` characters."""
        values = self.args.getlist(name)
        if any(len(v) > max_chars for v in values):
            too_long = next(v for v in values if len(v) > max_chars)
            self._problem(name, f"must be at most {max_chars} characters", too_long)
            return []
        return values

    def check(self) -> None:
        """Raise the 422 listing every problem found (nothing when the query was fine)."""
        if not self.problems:
            return
        if len(self.problems) == 1:
            p = self.problems[0]
            message = f"query parameter {p['field']!r} {p['problem']}"
        else:
            message = (f"{len(self.problems)} problems in the query "
                       f"({', '.join(repr(p['field']) for p in self.problems)}); see details")
        raise ApiError(422, "invalid_request", message, self.problems)
