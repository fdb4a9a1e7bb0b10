"""`iscore-train list` for people: one row per version, CURRENT and pins marked."""

from __future__ import annotations

from typing import Any


def _created(value: Any) -> str:
    """``2026-11-25 13:27`` from an ISO timestamp (UTC as recorded)."""
    if not value:
        return "?"
    text = str(value).replace("T", " ")
    return text[:16]


def _primary(metric: Any) -> str:
    if not isinstance(metric, dict) or metric.get("value") is None:
        return "-"
    return f"{metric.get('name', '?')} {float(metric['value']):.4f}"


def _pairs(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def format_versions(versions: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`iscore.registry.list_versions` rows (oldest first)."""
    if not versions:
        return "no versions in this registry (train one: iscore-train train --preset fb_news --promote)"
    header = ("", "VERSION", "CREATED (UTC)", "DATA SET", "PRIMARY METRIC", "PAIRS", "NOTE")
    rows = []
    for v in versions:
        pin = {True: "P", None: "?"}.get(v.get("pinned"), " ")  # None: pins.json unreadable
        marks = ("*" if v.get("current") else " ") + pin
        notes = [n for n, on in (("CURRENT", v.get("current")), ("pinned", v.get("pinned")),
                                 ("pins unreadable", v.get("pinned", False) is None)) if on]
        if v.get("error"):
            notes.append(f"BROKEN: {v['error']}")
        rows.append((marks, v["version"], _created(v.get("created_at")), str(v.get("dataset") or "?"),
                     _primary(v.get("primary_metric")), _pairs(v.get("behaviour_pairs")), ", ".join(notes)))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + ("  " + r[-1] if r[-1] else "")
             for r in (header, *rows)]
    lines.append("* = CURRENT (served), P = pinned (never pruned); PAIRS = behavioural pair accuracy")
    return "\n".join(line.rstrip() for line in lines)
