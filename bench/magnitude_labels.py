"""Which real labels reward magnitude? (#14 item 4): extra heads on the shipped model's features.

Run: python bench/magnitude_labels.py [--model-dir models] [--data-dir ../shared/data]

The magnitude pairs (behaviour_robust_dev/_v1, "magnitude") need a signal that says the bigger story
matters more. Engagement and the desk head do not say it. This script fits one ridge head per candidate
label, on the shipped model's own fitted features (names masked, as served), and prints, in one table:
the head's Spearman on its own time-ordered hold-out (last 20 %), the pair accuracy of the head alone,
and of the shipped model's raw score plus ``w`` times the head (both at unit spread) for w in 0.5/1/2/4,
on the dev suite (for choosing) and the held-out suite (for proof). Labels, all from ../shared:

- fb reactions: share of "sad" (and sad+wow+angry) reactions of a post, as a percentile within its page
  (fb_news_pages, posts from 2016-03 with 20+ reactions; reactions did not exist before 2016);
- fb coverage: log(1 + other pages carrying the same story), stories found by iscore.stories.StoryIndex at a
  strict join 0.35 without merging (fb_news_pages from 2015-06; the CHOSEN settings merge 2017's dense
  stream into mega-stories of 130 pages);
- UCI coverage: log(1 + publishers of the headline's STORY) (uci_news_aggregator, 120,000 distinct titles).

Feature sets: every part but the source one-hot ("all"), and the word vectors plus statistics only
("sem+stats", which cannot memorise a data set's topics). First it prints whether the training label
rewards size at all: the Spearman correlation, among fb headlines naming a quantity, between that quantity
(iscore.features.largest_quantity) and the engagement percentile within the page, for headlines about harm
(kill/dead/die/injured/...) and for the rest. Writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, model_data_parser  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.model import feature_union, linear_terms, part_columns  # noqa: E402
from iscore.stories import CHOSEN, StoryIndex, idf_from_pipeline  # noqa: E402

WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def _suite_pairs(name: str) -> list[dict[str, str]]:
    return json.loads((ROOT / "training" / "suites" / f"behaviour_robust_{name}.json").read_text())["magnitude"]


def _labels(data_dir: Path, pipeline) -> list[tuple[str, "object", np.ndarray]]:
    """(name, frame with text and time order, label) per candidate label."""
    import pandas as pd

    out = []
    fb = pd.read_csv(data_dir / "fb_news_pages" / "fb_news_link_posts.csv.gz",
                     usecols=["page", "link_name", "status_published", "num_reactions", "num_sads", "num_wows",
                              "num_angrys"])
    fb["t"] = pd.to_datetime(fb["status_published"], errors="coerce")
    fb = fb.dropna(subset=["t", "link_name"]).sort_values("t", kind="stable")

    r = fb[(fb["t"] >= "2016-03-01") & (fb["num_reactions"] >= 20)].drop_duplicates("link_name")
    n = r["num_reactions"].to_numpy(dtype=float)
    for name, share in (("fb sad share", r["num_sads"].to_numpy() / n),
                        ("fb sad+wow+angry share", (r["num_sads"] + r["num_wows"] + r["num_angrys"]).to_numpy() / n)):
        pct = pd.Series(share).groupby(r["page"].to_numpy()).rank(pct=True).to_numpy()
        out.append((name, r["link_name"].astype(str).to_numpy(), pct))

    c = fb[fb["t"] >= "2015-06-01"]
    index = StoryIndex(**{**CHOSEN, "threshold": 0.35, "merge_threshold": 1.01, "remerge_threshold": None},
                       idf=idf_from_pipeline(pipeline))
    for i, (text, page, t) in enumerate(zip(c["link_name"].astype(str), c["page"], c["t"])):
        index.add(i, text, t.to_pydatetime(), page)
    story = np.asarray(index.labels(range(len(c))))
    pages = pd.Series(c["page"].to_numpy()).groupby(story).nunique()
    out.append(("fb coverage (pages per story)", c["link_name"].astype(str).to_numpy(),
                np.log(pd.Series(story).map(pages).to_numpy(dtype=float))))

    u = pd.read_csv(data_dir / "uci_news_aggregator" / "uci_news_aggregator.csv.gz",
                    usecols=["TITLE", "PUBLISHER", "STORY", "TIMESTAMP"])
    pubs = u.groupby("STORY")["PUBLISHER"].nunique()
    u = u.drop_duplicates("TITLE").sample(120_000, random_state=0).sort_values("TIMESTAMP", kind="stable")
    out.append(("UCI coverage (publishers per story)", u["TITLE"].astype(str).to_numpy(),
                np.log1p(u["STORY"].map(pubs).to_numpy(dtype=float))))
    return out


def size_vs_engagement(data_dir: Path) -> list[tuple[str, int, float]]:
    """(group, headlines, Spearman of largest quantity vs shares percentile within page) for harm and other headlines."""
    import pandas as pd
    from scipy.stats import spearmanr

    from iscore.features import largest_quantity

    fb = pd.read_csv(data_dir / "fb_news_pages" / "fb_news_link_posts.csv.gz",
                     usecols=["page", "link_name", "num_shares"]).dropna(subset=["link_name"])
    fb["y"] = fb.groupby("page")["num_shares"].rank(pct=True)
    fb["q"] = [largest_quantity(t) for t in fb["link_name"].astype(str)]
    harm = fb["link_name"].str.contains(r"\b(?:kill|killed|kills|dead|die|dies|died|deaths?|injured|wounded|hurt)\b",
                                        case=False)
    out = []
    for name, mask in (("harm", harm), ("other", ~harm)):
        s = fb[mask & (fb["q"] > 0)]
        out.append((name, len(s), float(spearmanr(s["q"], s["y"])[0])))
    return out


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    args = model_data_parser(__doc__).parse_args(argv)
    model = registry.load_current(args.model_dir)
    pipe = model.pipeline
    union = feature_union(pipe)
    coef, _ = linear_terms(pipe)

    def matrix(texts) -> sp.csr_matrix:
        return sp.csr_matrix(union.transform(pd.DataFrame({"text": list(texts), "source": ""})))

    spans, off = {}, 0
    for name, _, cols in part_columns(pipe):
        spans[name] = np.arange(off, off + len(cols))
        off += len(cols)
    feature_sets = {"all": np.setdiff1d(np.arange(off), spans.get("source", [])),
                    "sem+stats": np.concatenate([spans[k] for k in ("semantic", "stats") if k in spans])}
    suites = {k: matrix(t for p in _suite_pairs(k) for t in (p["more"], p["less"])) for k in ("dev", "v1")}

    def accuracy(w: np.ndarray, suite: str) -> float:
        s = np.asarray(suites[suite] @ w).ravel().reshape(-1, 2)
        return float((s[:, 0] > s[:, 1]).mean())

    for group, n, rho in size_vs_engagement(args.data_dir):
        print(f"fb {group} headlines naming a quantity: {n}; Spearman(quantity, shares percentile in page) {rho:.3f}")
    print(f"model {model.version}; pair accuracy dev / held-out (v1); blend = shipped raw + w x head, both at unit spread")
    print(f"shipped alone: {accuracy(coef, 'dev'):.1%} / {accuracy(coef, 'v1'):.1%}\n")
    print("| label | features | head hold-out Spearman | head alone | "
          + " | ".join(f"w={w:g}" for w in WEIGHTS) + " |")
    print("|---|---|---|---|" + "---|" * len(WEIGHTS))
    for name, texts, y in _labels(args.data_dir, pipe):
        X = matrix(texts)
        base = float(np.std(X @ coef))
        cut = int(len(y) * 0.8)  # rows are in time order: fit on the older 80 %
        for fs, cols in feature_sets.items():
            head = Ridge(alpha=30.0).fit(X[:cut][:, cols], y[:cut])
            rho = spearmanr(head.predict(X[cut:][:, cols]), y[cut:])[0]
            w = np.zeros(off)
            w[cols] = head.coef_
            spread = float(np.std(X @ w)) or 1.0
            cells = [f"{accuracy(coef / base + k * w / spread, 'dev'):.1%} / {accuracy(coef / base + k * w / spread, 'v1'):.1%}"
                     for k in WEIGHTS]
            print(f"| {name} | {fs} | {rho:.3f} | {accuracy(w, 'dev'):.1%} / {accuracy(w, 'v1'):.1%} | "
                  + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
