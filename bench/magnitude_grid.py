"""How the magnitude prior's weights were chosen (#14 item 4): a grid on the heads of a prior-free model.

Run: python bench/magnitude_grid.py [--model-dir models] [--data-dir ../shared/data] [--version V]

Takes a version trained without the prior (default: the newest such version in the registry), computes
the two prior columns from its own word vectors (the toll: a quantity where a headline speaks of harm,
centred on QUANTITY_CENTRE; the size axis) and adds them to its editorial raw score at fixed weights
(Q, S), in editorial spreads per column spread, both spreads measured on a 40,000-row sample of the
training data, which is what EditorialBlendRegressor's prior does at fit time. For each toll centre
(log10 of the count that reads as neither small nor large) and each (Q, S) it prints the pair accuracy
on the development magnitude suite (for choosing), on the held-out suite (for proof only) and the
window top-ten share on news_engagement_2019 (the real stream). Post hoc: a real training run refits
both heads with the new columns, so its figures move a little (README, "Magnitude"). Writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import model_data_parser  # noqa: E402
from iscore import features as F  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.model import feature_parts, feature_union, linear_terms  # noqa: E402
from training.behaviour import ROBUST_DEV_SUITE_PATH, ROBUST_SUITE_PATH, load_suite  # noqa: E402

CENTRES = (1.0, 1.5, 2.0)
WEIGHTS_Q = (0.0, 0.15, 0.2, 0.25, 0.3, 0.35, 0.5)
WEIGHTS_S = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)


def prior_free_version(model_dir: Path) -> str:
    """The newest version whose recipe carries no magnitude prior."""
    for v in reversed(sorted(d.name for d in model_dir.iterdir() if (d / "manifest.json").is_file())):
        prior = registry.read_manifest(model_dir, v).get("model_config", {}).get("magnitude_prior") or [0, 0]
        if not any(prior):
            return v
    raise SystemExit(f"no version without the magnitude prior in {model_dir}")


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    import scipy.sparse as sp

    from training.data import resolve_spec
    from training.fitting import TrainOptions, prepare
    from training.streams import stream_windows, summarise, window_scores

    p = model_data_parser(__doc__)
    p.add_argument("--version", help="a version trained without the prior (default: the newest such)")
    args = p.parse_args(argv)
    version = args.version or prior_free_version(args.model_dir)
    pipe = registry.load_version(args.model_dir, version).pipeline
    union, parts = feature_union(pipe), feature_parts(pipe)
    emb, cleaner = parts["semantic"], parts["stats"].named_steps["stats"].cleaner_
    coef, _ = linear_terms(pipe, "editorial")
    scale = F.scale_table(emb.vocab, emb.vectors)
    harm = F.scale_table(emb.vocab, emb.vectors, F.HARM_WORDS, F.COMMERCE_WORDS)

    def columns(df: "pd.DataFrame") -> dict[str, np.ndarray]:
        clean = [cleaner.clean(t) for t in df["text"]]
        return {"ed": np.asarray(sp.csr_matrix(union.transform(df)) @ coef).ravel(),
                "S": np.asarray([F.scale_of(c, scale) for c in clean]),
                "q": np.asarray([F.content_stats(c)[6] for c in clean]),
                "h": np.asarray([F.harm_of(c, harm) for c in clean])}

    def suite(path: Path) -> dict[str, np.ndarray]:
        pairs = load_suite(path)["magnitude"]
        return columns(pd.DataFrame({"text": [t for q in pairs for t in (q["more"], q["less"])], "source": ""}))

    train = prepare(resolve_spec("fb_news", data_dir=args.data_dir), TrainOptions()).df.sample(40_000, random_state=0)
    cross = prepare(resolve_spec("news_2019", data_dir=args.data_dir), TrainOptions()).df
    sets = {"train": columns(train), "dev": suite(ROBUST_DEV_SUITE_PATH), "v1": suite(ROBUST_SUITE_PATH),
            "stream": columns(cross)}
    centre = float(np.median(sets["train"]["h"]))  # what HeadlineStats.fit sets as harm_centre_
    windows, flag = stream_windows(cross), cross["flag"].to_numpy(dtype=float)
    print(f"version {version} (no prior); harm gate centre {centre:.4f}; {len(windows)} stream windows")
    print("| toll centre | Q | S | dev suite | held-out suite | stream top-10 share |")
    print("|---|---|---|---|---|---|")
    rows = []
    for c in CENTRES:
        for cols in sets.values():
            cols["T"] = np.asarray([F.harm_quantity(q, h, centre, c) for q, h in zip(cols["q"], cols["h"])])
        sd = {k: float(np.std(sets["train"][k])) or 1.0 for k in ("ed", "S", "T")}

        def raw(cols: dict[str, np.ndarray], q: float, s: float) -> np.ndarray:
            return cols["ed"] / sd["ed"] + q * cols["T"] / sd["T"] + s * cols["S"] / sd["S"]

        def accuracy(cols: dict[str, np.ndarray], q: float, s: float) -> float:
            r = raw(cols, q, s).reshape(-1, 2)
            return float((r[:, 0] > r[:, 1]).mean())

        for q in WEIGHTS_Q:
            for s in WEIGHTS_S:
                share = summarise(window_scores(windows, flag, raw(sets["stream"], q, s)))["window_top10_share"]
                rows.append((c, q, s, accuracy(sets["dev"], q, s), accuracy(sets["v1"], q, s), share))
                print("| %g | %g | %g | %.1f %% | %.1f %% | %.4f |" % (c, q, s, 100 * rows[-1][3], 100 * rows[-1][4], share),
                      flush=True)
    best = max(r[3] for r in rows)
    tied = [r for r in rows if r[3] == best]
    print(f"\nbest dev accuracy {best:.1%}, reached by {len(tied)} of {len(rows)} settings:")
    for c in CENTRES:
        mine = [r for r in tied if r[0] == c]
        if mine:
            print(f"  centre {c:g}: Q {min(r[1] for r in mine):g}-{max(r[1] for r in mine):g}, "
                  f"S {min(r[2] for r in mine):g}-{max(r[2] for r in mine):g} ({len(mine)}); held-out "
                  f"{min(r[4] for r in mine):.1%}-{max(r[4] for r in mine):.1%}; stream "
                  f"{min(r[5] for r in mine):.4f}-{max(r[5] for r in mine):.4f}")
    print(json.dumps({"version": version, "best_dev": best, "tied": len(tied)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
