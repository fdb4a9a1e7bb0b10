"""The price of the desk head: one model per desk weight on the same fb_news time split.

Run: python bench/desk_weights.py [--embeddings var/embeddings/minilm-static-64.npz] [--weights 0,0.25,0.5,1,2]
(needs ../shared/data; about a minute per weight). Prints a markdown row per weight: hold-out
Spearman, NDCG@10, desk AUC, cross-source (news_2019) Spearman and desk AUC, dev-suite pairs,
behaviour-v1 pairs, invariance and direction. For reporting only: choosing the weight from this
table would tune on the hold-out and the test suite (`--select` uses CV folds and the dev suite).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iscore.model import ModelConfig  # noqa: E402
from iscore.settings import Settings  # noqa: E402
from training.behaviour import DEV_SUITE_PATH, load_suite, run_suite  # noqa: E402
from training.data import resolve_spec  # noqa: E402
from training.embed import load_embedder  # noqa: E402
from training.evaluate import evaluate_on, time_split  # noqa: E402
from training.fitting import TrainOptions, fit, prepare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--embeddings", default="var/embeddings/minilm-static-64.npz")
    ap.add_argument("--weights", default="0,0.25,0.5,1,2")
    args = ap.parse_args()
    data_dir = Settings.from_env().data_dir
    prep = prepare(resolve_spec("fb_news", data_dir=data_dir), TrainOptions())
    cross = prepare(resolve_spec("news_2019", data_dir=data_dir), TrainOptions())
    train, test = time_split(prep.df, 0.2)
    embedder, _ = load_embedder(Path(args.embeddings))
    dev = load_suite(DEV_SUITE_PATH)
    print("| desk weight | hold-out Spearman | hold-out NDCG@10 | hold-out desk AUC | cross-source Spearman "
          "| cross-source desk AUC | dev-suite pairs | behaviour-v1 pairs | invariance | direction |")
    for w in (float(x) for x in args.weights.split(",")):
        model = fit(train, ModelConfig(use_embeddings=True, embedding_weight=3.0, desk_weight=w), embedder)
        h = evaluate_on(model, test, test["y"].to_numpy())
        c = evaluate_on(model, cross.df, cross.df["y"].to_numpy())
        b, d = run_suite(model), run_suite(model, dev)
        print(f"| {w:g} | {h['spearman']:.3f} | {h['ndcg10_daily']:.3f} | {h['desk_auc']:.3f} | {c['spearman']:.3f} "
              f"| {c['desk_auc']:.3f} | {d['pairs']:.1%} | {b['pairs']:.1%} | {round(b['invariance'] * b['invariance_n'])}"
              f"/{b['invariance_n']} | {round(b['direction'] * b['direction_n'])}/{b['direction_n']} |", flush=True)


if __name__ == "__main__":
    main()
