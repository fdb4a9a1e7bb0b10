"""Story clustering evaluation (#16 item 3) on the UCI News Aggregator data (the aggregator's STORY ids as truth).

Run: python bench/cluster_eval.py [--data-dir ../shared/data] [--grid | --names-grid | --names-heldout]
     [--stories 300] [--big-stories 1500] [--replay-stories 600] [--models models]

``--names-grid``: the template checks of iscore.stories (names / numbers that differ, the weight of a term missing
from the model's IDF table) on both DEV streams; ``--names-heldout``: the chosen one and the alternatives (also
names found by case alone, without the model's lexicon) on the DEV and HELD-OUT streams.

Streams: all headlines of N stories sampled with a fixed seed; DEV = seed 1 (thresholds are chosen there with
--grid), HELD-OUT = seed 2 with the DEV stories removed (disjoint). Two orders of each stream:

- ``timestamp``: TIMESTAMP order, as the issue asks. Caution: TIMESTAMP is the aggregator's crawl time and each
  story was crawled in one burst (median span of a story: 11 seconds), so in this order the stories barely
  interleave and a time window does most of the work ("join the previous headline" scores near 1, printed as a
  leak check).
- ``shuffled``: the same headlines in a seeded random order, stamped evenly at 10,000 headlines an hour (the
  issue's scale target), so all stories are open at once and only the text can separate them. This is the honest
  one for text; thresholds are chosen on it. It is harsher than a real feed in one way (stories months
  apart, e.g. two Alibaba IPO filings, are open together) and kinder in another (only 300 stories).
- ``replay`` (a separate stream: a block of ``--replay-stories`` consecutive stories in the aggregator's
  chronological order, DEV block from rank 1000, HELD-OUT block from rank 4000 without any DEV story): each
  story starts at its real first crawl time and its members arrive Exp(1 h) after it (an assumption: the data
  has no publication times). Same-day stories on one running topic (the aggregator splits "Walking Dead season
  finale" into several stories) are open together, as in a real feed; 20-50 stories receive headlines in a
  typical hour.

Methods: the issue's naive baseline; StoryIndex v1 (online IDF, join 0.12, merge 0.30: the previous default);
StoryIndex with ``iscore.stories.chosen_options(model)`` (the model's offline TF-IDF table from models/CURRENT, plural
folding, periodic re-merge). The speed stream is bigger (``--big-stories`` stories, shuffled). Baseline (the
issue's): TF-IDF (sklearn, fitted on the stream) cosine with every earlier headline; a headline joins the story
of the most similar one at >= 0.2, else starts one. Prints B-cubed precision, recall, F1 and headlines/s (one
core) in one table. Reads the data at run time; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import STORY_SIZES  # noqa: E402
from iscore.stories import (  # noqa: E402
    CHOSEN, MEMBER_JOIN_THRESHOLD, WINDOW_HOURS, StoryIndex, bcubed, names_from_pipeline)

ROOT = Path(__file__).resolve().parents[1]
RATE_PER_HOUR = 10_000
REPLAY_SPREAD_HOURS = 1.0
DEV_REPLAY_START, HELD_REPLAY_START = 1000, 4000
V1 = dict(threshold=0.12, merge_threshold=0.30)  # the previous default (online IDF), for comparison


def model_parts(models: Path) -> tuple[dict[str, float], object, dict]:
    """The shipped model's TF-IDF table (term -> idf), StaticEmbedder and chosen StoryIndex options."""
    from iscore import registry
    from iscore.stories import chosen_options, embedder_from_pipeline, idf_from_pipeline

    pipe = registry.load_current(models).pipeline
    return idf_from_pipeline(pipe), embedder_from_pipeline(pipe), chosen_options(pipe)


def registry_pipeline(models: Path) -> object:
    """The pipeline of the model models/CURRENT names."""
    from iscore import registry

    return registry.load_current(models).pipeline


def run_live(s: pd.DataFrame, options: dict) -> tuple[list[int], float]:
    """Cluster a stream through the service's live window (StoryWindow.add, as a worker syncs): labels, rows/s."""
    from datetime import datetime, timezone

    from iscore.window import StoryWindow
    from iscore.window_store import StoredHeadline

    w = StoryWindow(WINDOW_HOURS, options)
    rows = [StoredHeadline(seq=i + 1, item_key=str(h), item_id=str(h), text=text, source=src, section=None,
                           url=None, published_at=datetime.fromtimestamp(t, timezone.utc),
                           received_at=datetime.fromtimestamp(t, timezone.utc), i_score=50.0)
            for i, (h, text, t, src) in enumerate(zip(s["id"], s["text"], s["t"], s["source"]))]
    t0 = time.process_time()
    for a in range(0, len(rows), 200):  # a worker adds what arrived since its last sync
        w.add(rows[a:a + 200])
    dt = time.process_time() - t0
    return w.index.labels(r.item_key for r in rows), len(rows) / dt


def load(data_dir: Path) -> pd.DataFrame:
    """The UCI headlines: id, text, source, story, t (epoch seconds)."""
    df = pd.read_csv(data_dir / "uci_news_aggregator" / "uci_news_aggregator.csv.gz", dtype=str,
                     keep_default_na=False, usecols=["ID", "TITLE", "PUBLISHER", "STORY", "TIMESTAMP"])
    return pd.DataFrame({"id": df["ID"].astype(int), "text": df["TITLE"], "source": df["PUBLISHER"],
                         "story": df["STORY"], "t": df["TIMESTAMP"].astype("int64") / 1000.0})


def sample_stories(df: pd.DataFrame, n: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """n story ids drawn with a seed (sorted first, so the draw does not depend on row order)."""
    ids = sorted(set(df["story"]) - set(exclude))
    rng = np.random.default_rng(seed)
    return list(rng.choice(ids, size=n, replace=False))


def stream(df: pd.DataFrame, stories: list[str], order: str, seed: int) -> pd.DataFrame:
    """All headlines of these stories in TIMESTAMP order or shuffled (then stamped at RATE_PER_HOUR)."""
    s = df[df["story"].isin(set(stories))]
    if order == "timestamp":
        return s.sort_values(["t", "id"]).reset_index(drop=True)
    s = s.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    s["t"] = 1.4e9 + np.arange(len(s)) * 3600.0 / RATE_PER_HOUR
    return s


def story_order(df: pd.DataFrame) -> list[str]:
    """Story ids in the order the aggregator first crawled them."""
    return df.groupby("story")["t"].min().sort_values(kind="stable").index.tolist()


def replay(df: pd.DataFrame, start: int, n: int, seed: int, exclude: set[str] = frozenset()) -> pd.DataFrame:
    """n consecutive stories from chronological rank start (minus exclude); members Exp(spread) after the story's
    real first crawl time, in time order."""
    ids = [sid for sid in story_order(df)[start:start + n] if sid not in exclude]
    s = df[df["story"].isin(set(ids))].copy()
    first = s.groupby("story")["t"].transform("min")
    rng = np.random.default_rng(seed)
    s["t"] = first + rng.exponential(REPLAY_SPREAD_HOURS, size=len(s)) * 3600.0
    return s.sort_values(["t", "id"]).reset_index(drop=True)


def hour(df: pd.DataFrame, seed: int, exclude: set[str] = frozenset(), n: int = RATE_PER_HOUR) -> pd.DataFrame:
    """A live hour as bench/ingest_bench.py --uci posts it: n headlines at RATE_PER_HOUR, each drawn story carrying
    1-15 of its titles (the ingest bench's mix), stories drawn from the whole data (minus exclude), members
    Exp(20 min) after a start uniform in the hour."""
    rng = np.random.default_rng(seed)
    groups = {sid: g for sid, g in df[~df["story"].isin(set(exclude))].groupby("story")}
    ids = sorted(groups)
    parts, total = [], 0
    while total < n:
        g = groups[ids[int(rng.integers(len(ids)))]]
        take = min(int(rng.choice(STORY_SIZES)), len(g), n - total)
        m = g.sample(n=take, random_state=int(rng.integers(2**31))).copy()
        m["t"] = 1.4e9 + rng.uniform(0, 3600) + rng.exponential(1200.0, size=take)
        parts.append(m)
        total += take
    out = pd.concat(parts).drop_duplicates("id")
    return out.sort_values(["t", "id"]).reset_index(drop=True)


def run_index(s: pd.DataFrame, **kw) -> tuple[list[int], float]:
    """Cluster a stream with StoryIndex: labels and headlines per second."""
    idx = StoryIndex(**kw)
    rows = list(zip(s["id"].tolist(), s["text"].tolist(), s["t"].tolist(), s["source"].tolist()))
    t0 = time.process_time()
    for h, text, t, src in rows:
        idx.add(h, text, t, src)
    dt = time.process_time() - t0
    return idx.labels(r[0] for r in rows), len(rows) / dt  # final ids: stories may have merged since


def run_baseline(s: pd.DataFrame, threshold: float = 0.2, chunk: int = 500) -> tuple[list[int], float]:
    """The issue's baseline: join the story of the most similar earlier headline at TF-IDF cosine >= threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.process_time()
    X = TfidfVectorizer().fit_transform(s["text"].tolist()).astype(np.float32).tocsr()
    n = X.shape[0]
    nearest = np.full(n, -1)
    best = np.zeros(n, dtype=np.float32)
    XT = X.T.tocsc()
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        S = (X[a:b] @ XT[:, :b]).toarray()
        S[np.arange(b)[None, :] >= np.arange(a, b)[:, None]] = -1.0  # only earlier headlines count
        nearest[a:b] = S.argmax(axis=1)
        best[a:b] = S.max(axis=1)
    labels = [0] * n
    count = 0
    for i in range(n):
        if i > 0 and best[i] >= threshold:
            labels[i] = labels[nearest[i]]
        else:
            labels[i] = count
            count += 1
    return labels, n / (time.process_time() - t0)


def previous_headline(s: pd.DataFrame, gap_seconds: float = 3600.0) -> list[int]:
    """Leak check: a headline joins the previous one's story when it came within gap_seconds, else starts one."""
    t = s["t"].to_numpy()
    labels = np.cumsum(np.r_[1, np.diff(t) > gap_seconds])
    return labels.tolist()


def row(name: str, stream_name: str, labels: list, truth: list, speed: float | None) -> str:
    """One line of the table."""
    p, r, f = bcubed(labels, truth)
    sp = f"{speed:>10,.0f}" if speed else f"{'-':>10}"
    return f"{stream_name:<28} {name:<34} {p:>6.3f} {r:>6.3f} {f:>6.3f} {sp}"


def main() -> None:
    """Build the streams, run the clusterers and print the table (and the DEV grid with --grid)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--stories", type=int, default=300)
    p.add_argument("--big-stories", type=int, default=1500)
    p.add_argument("--replay-stories", type=int, default=600)
    p.add_argument("--grid", action="store_true", help="print the DEV grid (and stop)")
    p.add_argument("--names-grid", action="store_true",
                   help="print the DEV grid of the template checks (name/number penalties, unknown-term IDF) and stop")
    p.add_argument("--hour-grid", action="store_true",
                   help="choose IDF and thresholds on three DEV streams (shuffled, replay, a live hour) and print the "
                        "HELD-OUT ones for every setting (and stop)")
    p.add_argument("--names-heldout", action="store_true",
                   help="print the template-check variants on the DEV and HELD-OUT streams and stop")
    a = p.parse_args()
    df = load(a.data_dir)
    idf, emb, chosen = model_parts(a.models)
    dev_ids = sample_stories(df, a.stories, seed=1)
    held_ids = sample_stories(df, a.stories, seed=2, exclude=set(dev_ids))
    if a.hour_grid:
        sets = {"DEV": [stream(df, dev_ids, "shuffled", seed=1), replay(df, DEV_REPLAY_START, a.replay_stories, seed=11),
                        hour(df, seed=21, exclude=set(held_ids))],
                "HELD-OUT": [stream(df, held_ids, "shuffled", seed=2),
                             replay(df, HELD_REPLAY_START, a.replay_stories, seed=12, exclude=set(dev_ids)),
                             hour(df, seed=22, exclude=set(dev_ids))]}
        print("settings | DEV F1 shuffled / replay / hour, mean | HELD-OUT F1 shuffled / replay / hour, mean "
              "| largest story of the HELD-OUT hour (true stories in it)")
        online = {k: v for k, v in chosen.items() if k != "idf"}
        for name, base in (("model idf", chosen), ("online idf", online)):
            for th in (0.12, 0.16, 0.2):
                for rt in (0.2, None):
                    kw = dict(base, threshold=th, merge_threshold=max(0.3, th + 0.1),
                              remerge_threshold=None if rt is None else round(max(rt, th + 0.05), 3))
                    cells = []
                    for which, streams in sets.items():
                        f1s = []
                        for st in streams:
                            labels, _ = run_index(st, **kw)
                            f1s.append(bcubed(labels, st["story"].tolist())[2])
                        cells.append(" / ".join(f"{f:.3f}" for f in f1s) + f", {sum(f1s) / len(f1s):.3f}")
                    truth = sets["HELD-OUT"][2]["story"].tolist()
                    big = pd.Series(labels).value_counts().index[0]
                    inside = len({t for t, lab in zip(truth, labels) if lab == big})
                    print(f"  {name}, join {th}, re-merge {kw['remerge_threshold']} | {cells[0]} | {cells[1]} | "
                          f"{inside}", flush=True)
        return
    if a.names_heldout:
        names = names_from_pipeline(registry_pipeline(a.models))
        base = {k: v for k, v in chosen.items() if k not in ("name_penalty", "number_penalty", "names")}
        helds = [("DEV s1 shuffled", stream(df, dev_ids, "shuffled", seed=1)),
                 ("DEV replay", replay(df, DEV_REPLAY_START, a.replay_stories, seed=11)),
                 ("HELD-OUT s2 shuffled", stream(df, held_ids, "shuffled", seed=2)),
                 ("HELD-OUT replay", replay(df, HELD_REPLAY_START, a.replay_stories, seed=12, exclude=set(dev_ids)))]
        variants = [("without template checks", {}), ("numbers 0.5", dict(number_penalty=0.5)),
                    ("names 0.5", dict(names=names, name_penalty=0.5)),
                    ("names veto", dict(names=names, name_penalty=0.0)),
                    ("names 0.5 + numbers 0.5", dict(names=names, name_penalty=0.5, number_penalty=0.5)),
                    ("case-only names 0.5 + numbers", dict(name_penalty=0.5, number_penalty=0.5)),
                    ("case-only names veto + numbers", dict(name_penalty=0.0, number_penalty=0.5))]
        print("template-check variants: P R F1 headlines/s on " + " | ".join(n for n, _ in helds))
        for label, extra in variants:
            cells = []
            for _, held in helds:
                labels, speed = run_index(held, **base, **extra)
                pr, rc, f1 = bcubed(labels, held["story"].tolist())
                cells.append(f"{pr:.3f} {rc:.3f} {f1:.3f} {speed:>6,.0f}")
            print(f"  {label:<26} " + "  |  ".join(cells), flush=True)
        return
    if a.names_grid:
        names = names_from_pipeline(registry_pipeline(a.models))
        devs = [("DEV s1 shuffled", stream(df, dev_ids, "shuffled", seed=1)),
                ("DEV replay", replay(df, DEV_REPLAY_START, a.replay_stories, seed=11))]
        print(f"DEV grid of the template checks (the model's name lexicon: {len(names or ()):,} words): "
              "settings, then P R F1 headlines/s per DEV stream, then the mean F1")
        grid = [(u, n, m) for u in ("rarest", "online") for n in (1.0, 0.5, 0.25, 0.0) for m in (1.0, 0.5, 0.0)]
        grid += [(u, n, m) for u in (0.9, 0.75, 0.5) for n in (1.0, 0.5) for m in (1.0, 0.5)]
        grid += [("rarest", 1.0, m) for m in (0.75, 0.25)]
        for unknown, npen, num in grid:
            kw = dict(chosen, names=names, name_penalty=npen, number_penalty=num, idf_unknown=unknown)
            cells, f1s = [], []
            for _, dev in devs:
                labels, speed = run_index(dev, **kw)
                pr, rc, f1 = bcubed(labels, dev["story"].tolist())
                cells.append(f"{pr:.3f} {rc:.3f} {f1:.3f} {speed:>6,.0f}")
                f1s.append(f1)
            print(f"  unknown={str(unknown):<6} name_penalty={npen:<4} number_penalty={num:<4}  "
                  + "  |  ".join(cells) + f"  | mean F1 {sum(f1s) / len(f1s):.3f}", flush=True)
        return
    if a.grid:
        dev = stream(df, dev_ids, "shuffled", seed=1)
        truth = dev["story"].tolist()
        print(f"DEV grid (seed 1, shuffled, {len(dev):,} headlines): settings P R F1 headlines/s")
        grid: list[dict] = []
        for th in (0.10, 0.12, 0.15):
            for mt in (None, 0.30):
                for rt in (None, 0.20, 0.25):
                    grid.append(dict(threshold=th, merge_threshold=mt, remerge_threshold=rt))
        runs = [("online", g) for g in grid] + [("model", {**g, "stem": st}) for g in grid for st in (False, True)]
        runs += [("model", dict(CHOSEN, bigram_weight=bw)) for bw in (0.75, 1.5)]
        runs += [("model", dict(CHOSEN, remerge_every=re, max_posting=100)) for re in (200, 1000)]
        runs += [("model", dict(CHOSEN, remerge_threshold=rt)) for rt in (0.125, 0.15, 0.175)]
        runs += [("model+vec", dict(CHOSEN, merge_threshold=mt, threshold=th, vectors=emb, dense_weight=dw))
                 for dw in (0.1, 0.2, 0.3) for th in (0.15, 0.2, 0.3) for mt in (None, 0.3)]
        for idf_name, kw in runs:
            labels, speed = run_index(dev, **kw, **({"idf": idf} if idf_name != "online" else {}))
            pr, rc, f1 = bcubed(labels, truth)
            shown = {k: v for k, v in kw.items() if k != "vectors"}
            print(f"  idf={idf_name:<9} {shown}  {pr:.3f} {rc:.3f} {f1:.3f} {speed:,.0f}", flush=True)
        return
    print(f"{'stream':<28} {'method':<34} {'P':>6} {'R':>6} {'F1':>6} {'hl/s':>10}")
    streams = []
    for label, ids, seed in (("DEV", dev_ids, 1), ("HELD-OUT", held_ids, 2)):
        for order in ("shuffled", "timestamp"):
            streams.append((f"{label} s{seed} {order}", stream(df, ids, order, seed), order == "timestamp"))
    streams.insert(2, ("DEV replay", replay(df, DEV_REPLAY_START, a.replay_stories, seed=11), False))
    streams.append(("HELD-OUT replay", replay(df, HELD_REPLAY_START, a.replay_stories, seed=12,
                                              exclude=set(dev_ids)), False))
    for name, s, leak in streams:
        truth = s["story"].tolist()
        name = f"{name} ({len(s):,})"
        lab, sp = run_baseline(s)
        print(row("baseline tfidf nearest >=0.2", name, lab, truth, sp))
        lab, sp = run_index(s, **V1)
        print(row("StoryIndex v1 online-idf .12/m.30", name, lab, truth, sp))
        lab, sp = run_index(s, **chosen)
        print(row("StoryIndex chosen (model idf)", name, lab, truth, sp))
        if leak:
            print(row("leak check: previous headline", name, previous_headline(s), truth, None))
    big_ids = sample_stories(df, a.big_stories, seed=3)
    big = stream(df, big_ids, "shuffled", seed=3)
    truth = big["story"].tolist()
    name = f"SPEED s3 shuffled ({len(big):,})"
    lab, base_sp = run_baseline(big)
    print(row("baseline tfidf nearest >=0.2", name, lab, truth, base_sp))
    lab, sp = run_index(big, **V1)
    print(row("StoryIndex v1 online-idf .12/m.30", name, lab, truth, sp) + f"  x{sp / base_sp:.2f}")
    lab, sp = run_index(big, **chosen)
    print(row("StoryIndex chosen (model idf)", name, lab, truth, sp) + f"  x{sp / base_sp:.2f}")
    lab, sp = run_live(big, chosen)
    print(row("live window (StoryWindow, chosen)", name, lab, truth, sp) + f"  x{sp / base_sp:.2f}")
    print(f"chosen: {CHOSEN} + the model's IDF table ({len(idf):,} terms); window {WINDOW_HOURS:g} h; "
          f"shuffled streams stamped at {RATE_PER_HOUR:,} headlines/h; replay members Exp({REPLAY_SPREAD_HOURS:g} h) "
          "after the story's first crawl; thresholds chosen on DEV (seed 1, shuffled), HELD-OUT stories are "
          "disjoint from DEV; hl/s = process CPU time, one core (xN = relative to the baseline in this run).")


if __name__ == "__main__":
    main()
