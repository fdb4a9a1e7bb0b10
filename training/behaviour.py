"""Behavioural suite: do scores agree with what a news editor calls important?"""

from __future__ import annotations

import json
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
