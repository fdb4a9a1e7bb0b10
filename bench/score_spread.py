"""How the shipped model's i-Scores spread over a news hour (for the sidebar's 50-80 target).

Run: python bench/score_spread.py [--model-dir models] [--data-dir ../shared/data]
Scores the fb_news time-ordered hold-out (newest 20 %) and prints score percentiles, the share
that is red, and the top ten of simulated 20-headline hours and of the real hourly feed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iscore import registry  # noqa: E402
from iscore.scoring import score  # noqa: E402
from iscore.settings import Settings  # noqa: E402
from training.data import resolve_spec  # noqa: E402
from training.evaluate import time_split  # noqa: E402
from training.fitting import TrainOptions, prepare  # noqa: E402


def top_ten_spans(s: np.ndarray, hours: int, per_hour: int, rng: np.random.Generator) -> np.ndarray:
    """(#1, #10) scores of ``hours`` random hours of ``per_hour`` headlines each."""
    draws = np.sort(s[rng.integers(0, len(s), size=(hours, per_hour))], axis=1)[:, ::-1]
    return draws[:, [0, 9]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", default="models")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    settings = Settings.from_env()
    loaded = registry.load_current(Path(args.model_dir))
    spec = resolve_spec("fb_news", data_dir=Path(args.data_dir) if args.data_dir else settings.data_dir)
    _, test = time_split(prepare(spec, TrainOptions()).df, 0.2)
    s = score(loaded.pipeline, test)
    print(f"model {loaded.version}; {len(s)} hold-out headlines")
    print("percentiles p5/p25/p50/p75/p95:", " / ".join(f"{v:.0f}" for v in np.percentile(s, [5, 25, 50, 75, 95])))
    print(f"red (>= {settings.red_threshold:g}): {np.mean(s >= settings.red_threshold):.1%}")
    for per_hour in (20, 40):
        spans = top_ten_spans(s, 2000, per_hour, np.random.default_rng(0))
        print(f"{per_hour}-headline hours (2,000 random draws): top ten #1 median {np.median(spans[:, 0]):.0f}, "
              f"#10 median {np.median(spans[:, 1]):.0f} (#10 10th pct {np.percentile(spans[:, 1], 10):.0f}, "
              f"#1 90th pct {np.percentile(spans[:, 0], 90):.0f})")
    hour = test["time"].dt.floor("h").to_numpy()
    tops = []
    for h in np.unique(hour):
        hs = np.sort(s[hour == h])[::-1]
        if len(hs) >= 10:
            tops.append((hs[0], hs[9]))
    t = np.asarray(tops)
    print(f"real feed ({len(t)} hours with 10+ headlines, all pages): #1 median {np.median(t[:, 0]):.0f}, "
          f"#10 median {np.median(t[:, 1]):.0f}")


if __name__ == "__main__":
    main()
