"""Story score on the news_engagement_2019 windows (#16 item 4): does ranking headlines by their story help, and
which weights should the story score have?

Run: python bench/story_score_eval.py [--model-dir models] [--data-dir ../shared/data] [--uci]

The windows and measure of training/streams.py (3-hour UTC windows with >= 20 headlines from >= 5 outlets; the share
of the top ten headlines that are the outlets' own top_article picks, ties averaged; random 0.12). In each window the
headlines are clustered in time order by iscore.stories.StoryIndex with the service's chosen options (as a worker
would), every story is scored by iscore.story_score at the window's end, and each headline is ranked by its story's
score (its own i-Score breaks ties). First table: the headline's own i-Score, the story score as shipped, with the
earlier hand-set weights, without freshness, and coverage alone, on all windows. Then the weights are learned: a
grid over the formula's four weights fitted on the earliest two thirds of the windows (time order), every ranking
reported on the later third (ties at the 100 cap broken as the service does, by the most recently updated story),
beside a logistic regression on the same parts. ``--uci``: only the UCI coverage evaluation (see uci_coverage).
Reads the data at run time; writes nothing.
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
from iscore.story_score import HAND_SET, StoryParams, story_score  # noqa: E402
from iscore.stories import StoryIndex, chosen_options  # noqa: E402
from training.data import resolve_spec  # noqa: E402
from training.fitting import TrainOptions, prepare  # noqa: E402
from training.streams import WINDOW_HOURS, stream_windows, summarise, window_scores  # noqa: E402


def story_scores(df: pd.DataFrame, rows: np.ndarray, i_scores: np.ndarray, end: pd.Timestamp,
                 params: StoryParams, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per row of one window: its story's score and its story's coverage."""
    order = sorted(rows, key=lambda r: df["time"].iloc[r])
    index = StoryIndex(**options)
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


FIT_SHARE = 2 / 3  # the earliest two thirds of the windows fit the weights; the later third reports them
GRID = dict(max_weight=(0.5, 0.7, 1.0), coverage_weight=(0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0),
            velocity_weight=(0.0, 3.0, 6.0, 10.0), half_life_minutes=(60.0, 120.0, 240.0, 1e9))


def story_columns(df: pd.DataFrame, windows: list, i_scores: np.ndarray, options: dict,
                  velocity_minutes: float) -> dict[str, np.ndarray]:
    """Per row (aligned with ``df``): its story's best and mean member i-Score, distinct sources, members in the last
    ``velocity_minutes`` and minutes since its newest member, at the end of its window (clustered as a worker
    would, in time order, with the service's chosen options)."""
    cols = {k: np.zeros(len(df)) for k in ("best", "mean", "coverage", "recent", "age")}
    times = df["time"].map(lambda t: t.timestamp()).to_numpy()
    for w in windows:
        end = (w.start + pd.Timedelta(hours=WINDOW_HOURS)).timestamp()
        order = sorted(w.rows, key=lambda r: times[r])
        index = StoryIndex(**options)
        for r in order:
            index.add(int(r), str(df["text"].iloc[r]), times[r], str(df["source"].iloc[r]))
        groups: dict[int, list[int]] = {}
        for r in w.rows:
            groups.setdefault(index.story_id(int(r)), []).append(int(r))
        for members in groups.values():
            isc = i_scores[members]
            newest = max(times[m] for m in members)
            stats = {"best": isc.max(), "mean": isc.mean(),
                     "coverage": len({str(df["source"].iloc[m]) for m in members}),
                     "recent": sum(1 for m in members if times[m] >= end - velocity_minutes * 60),
                     "age": max(0.0, end - newest) / 60}
            for m in members:
                for k, v in stats.items():
                    cols[k][m] = v
    return cols


def formula(cols: dict[str, np.ndarray], own: np.ndarray, max_weight: float, coverage_weight: float,
            velocity_weight: float, half_life_minutes: float) -> np.ndarray:
    """The story score of iscore.story_score with these weights, per row. Ties (scores clipped at 100) go to the
    most recently updated story, as in the service (iscore.window), then to the row's own i-Score."""
    base = max_weight * cols["best"] + (1 - max_weight) * cols["mean"]
    raw = base + coverage_weight * np.log2(np.maximum(cols["coverage"], 1)) \
        + velocity_weight * np.log2(1 + cols["recent"])
    score = np.clip(raw * 0.5 ** (cols["age"] / half_life_minutes), 0, 100)
    return score + 1e-3 / (1 + cols["age"]) + own * 1e-7


def learned_section(cross: pd.DataFrame, windows: list, flag: np.ndarray, i_score: np.ndarray,
                    options: dict) -> None:
    """Fit the story score's weights on the early windows (grid search of the formula, and a logistic regression
    on the same parts), report every ranking on the later windows."""
    from itertools import product

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler


    windows = sorted(windows, key=lambda w: w.start)
    n_fit = int(round(len(windows) * FIT_SHARE))
    fit, held = windows[:n_fit], windows[n_fit:]
    cols = story_columns(cross, windows, i_score, options, StoryParams().velocity_minutes)

    def share(ws: list, p: np.ndarray) -> float:
        return summarise(window_scores(ws, flag, p))["window_top10_share"]

    hand = dict(HAND_SET)
    shipped = {k: getattr(StoryParams(), k) for k in GRID}
    results = []
    for values in product(*GRID.values()):
        params = dict(zip(GRID, values))
        results.append((share(fit, formula(cols, i_score, **params)), params))
    best_fit, best = max(results, key=lambda x: x[0])
    top = sorted(results, key=lambda x: -x[0])[:5]
    fit_rows = np.concatenate([w.rows for w in fit])
    parts = np.column_stack([cols["best"], cols["mean"], np.log2(np.maximum(cols["coverage"], 1)),
                             np.log2(1 + cols["recent"]), cols["age"] / 60, i_score])
    scaler = StandardScaler().fit(parts[fit_rows])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(parts[fit_rows]), flag[fit_rows])
    lr_pred = lr.decision_function(scaler.transform(parts))
    print(f"\nLearned weights: fit on the {len(fit)} earliest windows ({fit[0].start:%Y-%m-%d} to "
          f"{fit[-1].start:%Y-%m-%d}), reported on the {len(held)} later ones ({held[0].start:%Y-%m-%d} to "
          f"{held[-1].start:%Y-%m-%d}); clustering: the service's chosen method (chosen_options of the model)")
    print(f"grid ({len(results)} settings of {', '.join(GRID)}); best five on the fit windows:")
    for sc, params in top:
        print(f"  fit share {sc:.4f}  {params}")
    rankers = {
        "headline i-Score alone": i_score,
        "coverage alone (ties by i-Score)": cols["coverage"] + i_score / 1000,
        f"story score, hand-set {hand}": formula(cols, i_score, **hand),
        f"story score, learned (grid) {best}": formula(cols, i_score, **best),
        f"story score as shipped {shipped}": formula(cols, i_score, **shipped),
        "logistic regression on the same parts": lr_pred,
    }
    print(f"\n{'ranker':100s} {'fit':>7s} {'later':>7s} {'all':>7s}")
    for name, p in rankers.items():
        print(f"{name:100s} {share(fit, p):>7.4f} {share(held, p):>7.4f} {share(windows, p):>7.4f}")
    rnd = summarise(window_scores(held, flag, i_score))["window_random_share"]
    for name, params in (("hand-set", hand), ("learned", best)):
        p = formula(cols, i_score, **params)
        at100 = np.mean([np.mean(np.floor(np.sort(p[w.rows])[::-1][:10]) >= 100) for w in windows])
        print(f"{name}: share of the top-ten rows shown as 100: {at100:.2f}")
    tied = [(sc, params) for sc, params in results if sc == best_fit]
    later = [share(held, formula(cols, i_score, **params)) for _, params in tied]
    print(f"{len(tied)} settings tie at the best fit share; their later shares {min(later):.4f}-{max(later):.4f} "
          "(the first in grid order is taken)")
    print(f"random on the later windows: {rnd:.4f}; logistic weights (standardised parts best, mean, log2 coverage, "
          f"log2(1 + recent), hours since newest, own i-Score): {np.round(lr.coef_[0], 3).tolist()}")


def uci_coverage(model, data_dir, stories: int = 600) -> None:
    """UCI coverage: does the live top ten pick the stories most publishers carried?

    The HELD-OUT replay stream of bench/cluster_eval.py (600 consecutive stories, members Exp(1 h) after the story's
    first crawl) goes through the service's own code: a StoryWindow with the chosen options, ``top_stories`` every
    hour with a 60-minute window. Truth: the aggregator's STORY ids; a story's true coverage is its distinct
    publishers among the members published in that hour. Per hour with at least ten true stories: how many of the ten
    true stories with most publishers (ties at the tenth place count) the ten returned stories name, by their
    representative headline's story, divided by ten; the mean true coverage of the distinct true stories named; and
    the repeats (returned stories naming a true story already named: the clustering split it).
    """
    from datetime import datetime, timezone

    from bench.cluster_eval import HELD_REPLAY_START, load, replay, sample_stories
    from iscore.window import StoryWindow, TopQuery, top_stories
    from iscore.window_store import StoredHeadline

    df = load(data_dir)
    dev_ids = sample_stories(df, 300, seed=1)
    s = replay(df, HELD_REPLAY_START, stories, seed=12, exclude=set(dev_ids))
    scored = reply_items(model.pipeline, [(str(i), t, p) for i, t, p in zip(s["id"], s["text"], s["source"])],
                         red_threshold=60, explain_top=1, with_explain=False)
    isc = [it["i_score"] for it in scored]
    rows = [StoredHeadline(seq=k + 1, item_key=str(h), item_id=str(h), text=t, source=p, section=None, url=None,
                           published_at=datetime.fromtimestamp(ts, timezone.utc),
                           received_at=datetime.fromtimestamp(ts, timezone.utc), i_score=sc)
            for k, (h, t, p, ts, sc) in enumerate(zip(s["id"], s["text"], s["source"], s["t"], isc))]
    story_of = dict(zip(s["id"].astype(str), s["story"]))
    rankings = {"story score as shipped": StoryParams(), "story score, hand-set weights": StoryParams(**HAND_SET),
                "best member's i-Score alone": StoryParams(max_weight=1, coverage_weight=0, velocity_weight=0,
                                                           half_life_minutes=1e9)}
    hits: dict[str, list[float]] = {k: [] for k in rankings}
    repeats: dict[str, list[float]] = {k: [] for k in rankings}
    cover: dict[str, list[float]] = {k: [] for k in rankings}
    ideal, rand = [], []
    w = StoryWindow(6.0, chosen_options(model.pipeline))
    t_first, t_last = s["t"].min(), s["t"].max()
    tick = (t_first // 3600 + 1) * 3600
    k = 0
    while tick <= t_last + 3600:
        batch = []
        while k < len(rows) and rows[k].published_at.timestamp() <= tick:
            batch.append(rows[k])
            k += 1
        w.add(batch)
        now = datetime.fromtimestamp(tick, timezone.utc)
        w.evict(now)
        hour = [r for r in w.in_window(datetime.fromtimestamp(tick - 3600, timezone.utc), now)]
        pubs: dict[str, set] = {}
        for r in hour:
            pubs.setdefault(story_of[r.item_id], set()).add(r.source)
        tick += 3600
        if len(pubs) < 10:
            continue
        counts = sorted((len(v) for v in pubs.values()), reverse=True)
        tenth = counts[9]
        ideal.append(float(np.mean(counts[:10])))
        rand.append(float(np.mean(counts)))
        for name, params in rankings.items():
            top = top_stories(w, TopQuery(window_minutes=60, limit=10), now, params=params, step_seconds=0)
            truth = []
            for st in top:
                rep = max((m for m in st["members"]), key=lambda m: w.rows[m].i_score)
                truth.append(story_of[rep])
            distinct = set(truth)  # a true story split in two shows twice: it counts once
            hits[name].append(sum(len(pubs[t]) >= tenth for t in distinct) / 10)
            cover[name].append(float(np.mean([len(pubs[t]) for t in distinct])))
            repeats[name].append(len(truth) - len(distinct))
    print(f"\nUCI coverage (HELD-OUT replay stream, {len(s):,} headlines of {s['story'].nunique()} stories; "
          f"{len(ideal)} hours with >= 10 true stories; live window code, 60-minute window):")
    print(f"{'ranking':32s} {'top-10 hits':>11s} {'mean publishers':>16s} {'repeats in ten':>15s}")
    for name in rankings:
        print(f"{name:32s} {np.mean(hits[name]):>11.3f} {np.mean(cover[name]):>16.2f} {np.mean(repeats[name]):>15.2f}")
    print(f"{'(the true top ten)':32s} {1.0:>11.3f} {np.mean(ideal):>16.2f}")
    print(f"{'(a random story)':32s} {'':>11s} {np.mean(rand):>16.2f}")


def main(argv: list[str] | None = None) -> int:
    """Print the windowed top-ten share of each ranking."""
    p = model_data_parser(__doc__)
    p.add_argument("--uci", action="store_true", help="only the UCI coverage evaluation")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.uci:
        uci_coverage(registry.load_current(args.model_dir), args.data_dir)
        print(f"\n{time.perf_counter() - t0:.0f} s")
        return 0
    cross = prepare(resolve_spec("news_2019", data_dir=args.data_dir), TrainOptions()).df.reset_index(drop=True)
    cross["time"] = pd.to_datetime(cross["time"], utc=True)
    windows = stream_windows(cross)
    flag = cross["flag"].to_numpy(dtype=float)
    model = registry.load_current(args.model_dir)
    items = reply_items(model.pipeline, [(str(i), t, s) for i, (t, s) in enumerate(zip(cross["text"], cross["source"]))],
                        red_threshold=60, explain_top=1, with_explain=False)
    i_score = np.array([it["i_score"] for it in items])
    print(f"news_2019: {len(cross):,} rows, {len(windows)} windows of {WINDOW_HOURS} h; model {model.version}")
    options = chosen_options(model.pipeline)
    variants = {"story score as shipped (learned weights)": StoryParams(),
                "story score, the earlier hand-set weights": StoryParams(**HAND_SET),
                "story score as shipped without freshness": StoryParams(half_life_minutes=1e9)}
    preds: dict[str, np.ndarray] = {"headline i-Score (today)": i_score}
    coverage_only = np.zeros(len(cross))
    for name, params in variants.items():
        p = np.zeros(len(cross))
        for w in windows:
            end = w.start + pd.Timedelta(hours=WINDOW_HOURS)
            s, cov = story_scores(cross, w.rows, i_score, end, params, options)
            p[w.rows] = s + i_score[w.rows] / 1000  # the headline's own score breaks ties within a story
            coverage_only[w.rows] = cov + i_score[w.rows] / 1000
        preds[name] = p
    preds["coverage alone (ties by i-Score)"] = coverage_only
    print(f"\n{'ranker':45s} {'top10 share':>11s} {'random':>7s} {'x random':>8s} {'NDCG@10':>8s}")
    for name, p in preds.items():
        s = summarise(window_scores(windows, flag, p))
        print(f"{name:45s} {s['window_top10_share']:>11.4f} {s['window_random_share']:>7.4f} "
              f"{s['window_share_vs_random']:>8.2f} {s['window_ndcg10']:>8.4f}")
    learned_section(cross, windows, flag, i_score, options)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
