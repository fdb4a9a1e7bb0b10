"""Robustness and magnitude (#14 items 1 and 4): name effect, surface effect and magnitude pairs.

Run: python bench/behaviour_eval.py [--model-dir models] [--data-dir ../shared/data] [--no-baselines]
Prints one table: the shipped model (CURRENT) and the version it replaced, each scored raw
(iscore.scoring.score) and as a reply (iscore.scoring.reply_items: triage and shrinkage), and the
baselines fitted on the fb_news training part as `train` does (constant, headline length, TF-IDF
ridge), on the held-out suite (behaviour_robust_v1) and the dev suite (behaviour_robust_dev). Then
issue 14's own examples re-measured, raw and reply, for both versions. Reads the data at run time;
writes nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, model_data_parser  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.scoring import InputContext, reply_items, score  # noqa: E402
from iscore.settings import Settings  # noqa: E402
from training.behaviour import (  # noqa: E402
    MAGNITUDE_TARGET,
    NAME_EFFECT_TARGET,
    SURFACE_EFFECT_TARGET,
    SURFACE_KINDS,
    robustness,
)


# Issue 14's examples (the issue elides the earthquake headline; this is the one tests/test_shipped_model.py uses).
QUAKE = "Earthquake kills at least 300 in central Turkey"
ISSUE_EXAMPLES: list[tuple[str, str]] = [
    ("name alone", "Trump"),
    ("famous name (R)", "Donald Trump shares photo of new puppy"),
    ("famous name (D)", "Joe Biden shares photo of new puppy"),
    ("unknown name", "Peter Lindqvist shares photo of new puppy"),
    ("quake", QUAKE),
    ("quake + '!'", QUAKE + "!"),
    ("quake + 'BREAKING:'", "BREAKING: " + QUAKE),
    ("quake ALL CAPS", QUAKE.upper()),
    ("plane crash", "Passenger plane crashes near Madrid airport, 150 on board"),
    ("missile test", "North Korea tests intercontinental ballistic missile"),
    ("cat in tree", "Cat rescued from tree by friendly neighbour"),
]


def reply_scorer(pipeline: Any, red_threshold: float):
    """Texts -> the i_score a /v1/score reply carries (after triage and shrinkage), no source given."""
    ctx = InputContext.of(pipeline)

    def scorer(texts: list[str]) -> np.ndarray:
        items = reply_items(pipeline, [(str(i), t, None) for i, t in enumerate(texts)], red_threshold=red_threshold,
                            explain_top=0, with_explain=False, context=ctx)
        return np.asarray([it["i_score"] for it in items], dtype=np.float64)

    return scorer


def previous_version(model_dir: Path, current: str) -> str | None:
    """The version CURRENT was promoted from (history), else the newest older version on disk."""
    for entry in reversed(registry.read_history(model_dir)):
        if entry.get("version") == current and entry.get("from"):
            if (model_dir / entry["from"]).is_dir():
                return entry["from"]
    older = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and p.name < current and not p.name.startswith("."))
    return older[-1] if older else None


def fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1%}" if pct else f"{v:.1f}"


def row(name: str, fig: dict[str, dict[str, Any]]) -> str:
    t, d = fig["test"], fig["dev"]
    kinds = " / ".join(fmt(t["surface_by_kind"][k]) for k in SURFACE_KINDS)
    return (f"| {name} | {fmt(t['name_effect'])} ({fmt(t['name_effect_max'])}) | {fmt(t['name_ok'], True)} "
            f"| {fmt(t['surface_effect'])} ({fmt(t['surface_effect_max'])}) | {fmt(t['surface_ok'], True)} | {kinds} "
            f"| {fmt(t['magnitude'], True)} | {fmt(d['name_effect'])} | {fmt(d['surface_effect'])} "
            f"| {fmt(d['magnitude'], True)} |")


def main(argv: list[str] | None = None) -> int:
    p = model_data_parser(__doc__)
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines (they read and fit fb_news)")
    args = p.parse_args(argv)
    red = Settings().red_threshold

    current = registry.load_current(args.model_dir)
    models = [(f"shipped {current.version}", current)]
    prev = previous_version(args.model_dir, current.version)
    if prev:
        models.append((f"previous {prev}", registry.load_version(args.model_dir, prev)))

    rows: list[tuple[str, dict[str, dict[str, Any]]]] = []
    for name, loaded in models:
        rows.append((f"{name} raw", robustness(loaded.pipeline)))
        rows.append((f"{name} reply", robustness(loaded.pipeline, scorer=reply_scorer(loaded.pipeline, red))))

    baseline_note = "baselines skipped (--no-baselines)"
    if not args.no_baselines:
        from training.data import resolve_spec
        from training.evaluate import fit_baselines, time_split
        from training.fitting import TrainOptions, prepare

        t0 = time.perf_counter()
        prep = prepare(resolve_spec("fb_news", data_dir=args.data_dir), TrainOptions())
        train, _ = time_split(prep.df, 0.2)
        base = fit_baselines(train, train["y"].to_numpy())
        seconds = time.perf_counter() - t0
        baseline_note = f"baselines fitted on the fb_news training part ({len(train):,} rows) in {seconds:.0f} s"
        for name, model in base.items():
            rows.append((f"baseline {name}", robustness(model)))

    print(f"held-out suite behaviour-robust-v1, dev suite behaviour-robust-dev-1; {baseline_note}")
    print(f"targets: name effect <= {NAME_EFFECT_TARGET:g}, surface effect <= {SURFACE_EFFECT_TARGET:g}, "
          f"magnitude >= {MAGNITUDE_TARGET:.0%}; effect = mean over templates (max in brackets) of the largest change")
    print()
    print("| model | name effect (max) | templates <= 10 | surface effect (max) | headlines <= 3 "
          f"| mean change {' / '.join(SURFACE_KINDS)} | magnitude | dev name | dev surface | dev magnitude |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, fig in rows:
        print(row(name, fig))

    print()
    print("Issue 14's examples (raw = iscore.scoring.score, reply = reply_items' i_score):")
    print("| example | text | " + " | ".join(f"{n} raw | {n} reply" for n, _ in models) + " |")
    print("|---|---|" + "---|---|" * len(models))
    texts = [t for _, t in ISSUE_EXAMPLES]
    cols = []
    for _, loaded in models:
        cols.append((score(loaded.pipeline, texts), reply_scorer(loaded.pipeline, red)(texts)))
    for i, (label, text) in enumerate(ISSUE_EXAMPLES):
        print(f"| {label} | {text} | " + " | ".join(f"{raw[i]:.1f} | {rep[i]:.1f}" for raw, rep in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
