"""Story score on the news_engagement_2019 windows (#16 item 4): does ranking headlines by their story help?

Run: python bench/story_score_eval.py [--model-dir models] [--data-dir ../shared/data]

The windows and measure of training/streams.py (3-hour UTC windows with >= 20 headlines from >= 5 outlets; the share
of the top ten headlines that are the outlets' own top_article picks, ties averaged; today 0.18, random 0.12). In each
window the headlines are clustered in time order by iscore.stories.StoryIndex (as a worker would), every story is
scored by iscore.story_score at the window's end, and each headline is ranked by its story's score (its own i-Score
breaks ties). Variants: the headline's own i-Score (today's ranking), the story score as shipped, without freshness,
and coverage alone. Reads the data at run time; writes nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import model_data_parser  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.scoring import reply_items  # noqa: E402
from iscore.story_score import StoryParams, story_score  # noqa: E402
from iscore.stories import StoryIndex  # noqa: E402
from training.data import resolve_spec  # noqa: E402
from training.fitting import TrainOptions, prepare  # noqa: E402
from training.streams import WINDOW_HOURS, stream_windows, summarise, window_scores  # noqa: E402


def story_scores(df: pd.DataFrame, rows: np.ndarray, i_scores: np.ndarray, end: pd.Timestamp,
                 params: StoryParams) -> tuple[np.ndarray, np.ndarray]:
    """Per row of one window: its story's score and its story's coverage."""
    order = sorted(rows, key=lambda r: df["time"].iloc[r])
    index = StoryIndex()
    for r in order:
        index.add(int(r), str(df["text"].iloc[r]), df["time"].iloc[r].to_pydatetime(), str(df["source"].iloc[r]))
    groups: dict[int, list[int]] = {}
    for r in rows:
        groups.setdefault(index.story_id(int(r)), []).append(int(r))
    score = np.zeros(len(df))
    cov = np.zeros(len(df))
    now = end.to_pydatetime()
    for members in groups.values():
        s = story_score([float(i_scores[m]) for m in members], [str(df["source"].iloc[m]) for m in members],
                        [df["time"].iloc[m].to_pydatetime() for m in members], now, params)
        for m in members:
            score[m], cov[m] = s.score, s.coverage
    return score[rows], cov[rows]


def main(argv: list[str] | None = None) -> int:
    """Print the windowed top-ten share of each ranking."""
    args = model_data_parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    cross = prepare(resolve_spec("news_2019", data_dir=args.data_dir), TrainOptions()).df.reset_index(drop=True)
    cross["time"] = pd.to_datetime(cross["time"], utc=True)
    windows = stream_windows(cross)
    flag = cross["flag"].to_numpy(dtype=float)
    model = registry.load_current(args.model_dir)
    items = reply_items(model.pipeline, [(str(i), t, s) for i, (t, s) in enumerate(zip(cross["text"], cross["source"]))],
                        red_threshold=60, explain_top=1, with_explain=False)
    i_score = np.array([it["i_score"] for it in items])
    print(f"news_2019: {len(cross):,} rows, {len(windows)} windows of {WINDOW_HOURS} h; model {model.version}")
    variants = {"story score (shipped: half-life 120 min)": StoryParams(),
                "story score without freshness": StoryParams(half_life_minutes=1e9),
                "story score, half-life 60 min": StoryParams(half_life_minutes=60)}
    preds: dict[str, np.ndarray] = {"headline i-Score (today)": i_score}
    coverage_only = np.zeros(len(cross))
    for name, params in variants.items():
        p = np.zeros(len(cross))
        for w in windows:
            end = w.start + pd.Timedelta(hours=WINDOW_HOURS)
            s, cov = story_scores(cross, w.rows, i_score, end, params)
            p[w.rows] = s + i_score[w.rows] / 1000  # the headline's own score breaks ties within a story
            coverage_only[w.rows] = cov + i_score[w.rows] / 1000
        preds[name] = p
    preds["coverage alone (ties by i-Score)"] = coverage_only
    print(f"\n{'ranker':45s} {'top10 share':>11s} {'random':>7s} {'x random':>8s} {'NDCG@10':>8s}")
    for name, p in preds.items():
        s = summarise(window_scores(windows, flag, p))
        print(f"{name:45s} {s['window_top10_share']:>11.4f} {s['window_random_share']:>7.4f} "
              f"{s['window_share_vs_random']:>8.2f} {s['window_ndcg10']:>8.4f}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
