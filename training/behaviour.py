"""Behavioural suite: do scores agree with what a news editor calls important?"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iscore.scoring import score

SUITE_PATH = Path(__file__).with_name("suites") / "behaviour_v1.json"  # the test suite, reported and gated
DEV_SUITE_PATH = SUITE_PATH.with_name("behaviour_dev.json")  # for model selection only


def load_suite(path: Path = SUITE_PATH) -> dict[str, Any]:
    """The versioned suite of pairs, invariance templates and direction checks."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_suite(pipeline: Any, suite: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pass rates of a fitted pipeline on every part of the suite, with the failures."""
    suite = suite or load_suite()
    pairs = suite["pairs"]
    s = score(pipeline, [t for pair in pairs for t in pair]).reshape(-1, 2)
    pair_ok = s[:, 0] > s[:, 1]

    spread_max = float(suite.get("invariance_max_spread", 10.0))
    inv_results = []
    for item in suite.get("invariance", []):
        texts = [item["template"].format(x=f) for f in item["fill"]]
        v = score(pipeline, texts)
        inv_results.append(float(v.max() - v.min()))
    inv_ok = np.asarray(inv_results) <= spread_max

    tol = float(suite.get("direction_tolerance", 1.0))
    direction = suite.get("direction", [])
    d = score(pipeline, [t for pair in direction for t in pair]).reshape(-1, 2) if direction else np.zeros((0, 2))
    dir_ok = d[:, 0] >= d[:, 1] - tol

    def rate(ok: np.ndarray) -> float | None:
        return round(float(ok.mean()), 4) if ok.size else None

    return {
        "suite": suite.get("version", "unknown"),
        "pairs": rate(pair_ok),
        "pairs_n": int(pair_ok.size),
        "invariance": rate(inv_ok),
        "invariance_n": int(inv_ok.size),
        "invariance_max_spread_seen": round(max(inv_results), 2) if inv_results else None,
        "direction": rate(dir_ok),
        "direction_n": int(dir_ok.size),
        "failed_pairs": [pairs[i] for i in np.flatnonzero(~pair_ok)[:20]],
    }


# --- Robustness and magnitude (issue 14, items 1 and 4) ------------------------------------------
# Separate files so behaviour-v1's recorded figures stay reproducible: the held-out suite is reported
# for every candidate, baseline and champion and never chooses; the dev suite may be used to choose.
ROBUST_SUITE_PATH = SUITE_PATH.with_name("behaviour_robust_v1.json")
ROBUST_DEV_SUITE_PATH = SUITE_PATH.with_name("behaviour_robust_dev.json")
NAME_EFFECT_TARGET = 10.0  # points, mean over templates of the largest change a name swap causes
SURFACE_EFFECT_TARGET = 3.0  # points, mean over headlines of the largest change a surface variant causes
MAGNITUDE_TARGET = 0.95  # share of magnitude pairs ordered right
SURFACE_KINDS = ("upper", "lower", "exclaim", "breaking", "quotes")

Scorer = Callable[[list[str]], np.ndarray]


def surface_variants(text: str, quote: str) -> dict[str, str]:
    """The surface changes of ``text`` that should not move its score: ALL CAPS, lower case, a
    trailing "!", a "BREAKING: " prefix and double quotes around ``quote`` (a phrase of ``text``)."""
    if quote not in text:
        raise ValueError(f"quote {quote!r} is not part of {text!r}")
    return {"upper": text.upper(), "lower": text.lower(), "exclaim": text + "!",
            "breaking": "BREAKING: " + text, "quotes": text.replace(quote, f'"{quote}"', 1)}


def _r(x: float) -> float:
    return round(float(x), 2)


def name_effects(scorer: Scorer, templates: list[str], fill: list[str]) -> list[dict[str, Any]]:
    """Per template: the largest score change swapping one name for another causes (max - min),
    the mean absolute change over all pairs of names, and which names score highest and lowest."""
    texts = [t.format(x=n) for t in templates for n in fill]
    s = np.asarray(scorer(texts), dtype=np.float64).reshape(len(templates), len(fill))
    out = []
    for t, row in zip(templates, s):
        diffs = np.abs(row[:, None] - row[None, :])[np.triu_indices(len(fill), 1)]
        out.append({"template": t, "max": _r(row.max() - row.min()), "mean": _r(diffs.mean()),
                    "top": fill[int(row.argmax())], "bottom": fill[int(row.argmin())]})
    return out


def surface_effects(scorer: Scorer, items: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per headline: the absolute score change of each surface variant, their mean and their max."""
    variants = [surface_variants(it["text"], it["quote"]) for it in items]
    texts = [t for it, v in zip(items, variants) for t in (it["text"], *(v[k] for k in SURFACE_KINDS))]
    s = np.asarray(scorer(texts), dtype=np.float64).reshape(len(items), 1 + len(SURFACE_KINDS))
    out = []
    for it, row in zip(items, s):
        change = np.abs(row[1:] - row[0])
        out.append({"text": it["text"], "max": _r(change.max()), "mean": _r(change.mean()),
                    **{k: _r(c) for k, c in zip(SURFACE_KINDS, change)}})
    return out


def run_robust_suite(pipeline: Any, suite: dict[str, Any] | None = None, *,
                     scorer: Scorer | None = None) -> dict[str, Any]:
    """Name effect, surface effect and magnitude pair accuracy of a fitted pipeline (or of ``scorer``,
    a function from a list of texts to scores, e.g. the reply scores after triage).

    name_effect: mean over templates of the largest change a name swap causes (target <= 10),
    name_effect_max: the largest of them, name_ok: share of templates within the target;
    surface_effect / surface_effect_max / surface_ok: the same for a headline's surface variants
    (target <= 3), with the mean change per kind of variant; magnitude: share of pairs where the
    bigger story scores higher (ties count as wrong; target >= 0.95), per kind as well.
    """
    suite = suite or load_suite(ROBUST_SUITE_PATH)
    scorer = scorer or (lambda texts: score(pipeline, texts))
    name_target = float(suite.get("name_effect_target", NAME_EFFECT_TARGET))
    surface_target = float(suite.get("surface_effect_target", SURFACE_EFFECT_TARGET))
    out: dict[str, Any] = {"suite": suite.get("version", "unknown")}

    names = suite.get("names")
    if names and names.get("templates"):
        per = name_effects(scorer, names["templates"], names["fill"])
        spread = np.asarray([p["max"] for p in per])
        out.update({"name_effect": _r(spread.mean()), "name_effect_max": _r(spread.max()),
                    "name_effect_pairwise": _r(np.mean([p["mean"] for p in per])),
                    "name_ok": round(float((spread <= name_target).mean()), 4), "name_n": len(per),
                    "name_worst": sorted(per, key=lambda p: -p["max"])[:3]})

    items = suite.get("surface")
    if items:
        per = surface_effects(scorer, items)
        worst = np.asarray([p["max"] for p in per])
        out.update({"surface_effect": _r(worst.mean()), "surface_effect_max": _r(worst.max()),
                    "surface_ok": round(float((worst <= surface_target).mean()), 4), "surface_n": len(per),
                    "surface_by_kind": {k: _r(np.mean([p[k] for p in per])) for k in SURFACE_KINDS},
                    "surface_worst": sorted(per, key=lambda p: -p["max"])[:3]})

    pairs = suite.get("magnitude")
    if pairs:
        s = np.asarray(scorer([t for p in pairs for t in (p["more"], p["less"])]), dtype=np.float64).reshape(-1, 2)
        ok = s[:, 0] > s[:, 1]
        kinds = np.asarray([str(p.get("kind", "")) for p in pairs])
        out.update({"magnitude": round(float(ok.mean()), 4), "magnitude_n": int(ok.size),
                    "magnitude_by_kind": {str(k): round(float(ok[kinds == k].mean()), 4) for k in dict.fromkeys(kinds)},
                    "failed_magnitude": [[pairs[i]["more"], pairs[i]["less"]] for i in np.flatnonzero(~ok)[:20]]})
    return out


def robustness(pipeline: Any, *, scorer: Scorer | None = None) -> dict[str, dict[str, Any]]:
    """The held-out robustness figures (``test``, reported only) and the dev ones (``dev``, for selection)."""
    return {"test": run_robust_suite(pipeline, load_suite(ROBUST_SUITE_PATH), scorer=scorer),
            "dev": run_robust_suite(pipeline, load_suite(ROBUST_DEV_SUITE_PATH), scorer=scorer)}


# The flat figures the report tables show (held-out first, then dev with a "dev_" prefix).
ROBUST_COLUMNS = ("name_effect", "name_effect_max", "name_ok", "surface_effect", "surface_effect_max",
                  "surface_ok", "magnitude")


def robust_row(figures: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """One table row from :func:`robustness` output: held-out columns, then the dev ones prefixed ``dev_``."""
    figures = figures or {}
    test, dev = figures.get("test") or {}, figures.get("dev") or {}
    return {**{c: test.get(c) for c in ROBUST_COLUMNS}, **{f"dev_{c}": dev.get(c) for c in ROBUST_COLUMNS}}
