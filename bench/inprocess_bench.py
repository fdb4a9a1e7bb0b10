"""In-process scoring throughput of the shipped model, and of each featurizer on its own.

Run: python bench/inprocess_bench.py [--model-dir models]
Prints headlines/s per batch size and the share of time each part of the pipeline takes.
Pinned to one BLAS thread (and Python is one core), so figures are per core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.common import headlines, machine  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.features import as_records  # noqa: E402
from iscore.model import calibrated_model, feature_parts, feature_union  # noqa: E402
from iscore.scoring import score  # noqa: E402


def rate(fn, batch, min_seconds: float = 1.0) -> float:
    """Items per second of fn(batch), repeated for at least min_seconds (best of 3 rounds)."""
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            fn(batch)
            n += 1
            el = time.perf_counter() - t0
            if el >= min_seconds / 3:
                break
        best = max(best, n * len(batch) / el)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    args = ap.parse_args()
    model = registry.load_current(Path(args.model_dir))
    pipe = model.pipeline
    texts = headlines(10_000)
    recs = as_records(texts, ["reuters"] * len(texts))
    print(f"# in-process scoring, model {model.version}\n# {machine()}, 1 thread")
    features = feature_union(pipe)
    named_parts = list(feature_parts(pipe).items())
    reg = calibrated_model(pipe)
    with threadpool_limits(1):
        print(f"{'batch':>6} {'pipeline h/s':>14} " + " ".join(f"{n + ' h/s':>16}" for n, _ in named_parts)
              + f" {'regressor h/s':>14}")
        for bs in (1, 100, 10_000):
            batch = recs[:bs]
            full = rate(lambda b: score(pipe, b), batch)
            parts = [rate(part.transform, batch) for _, part in named_parts]
            X = features.transform(batch)
            regr = rate(lambda b: reg.predict(X), batch)
            print(f"{bs:>6} {full:>14,.0f} " + " ".join(f"{p:>16,.0f}" for p in parts) + f" {regr:>14,.0f}")
            share = {n: (1 / p) / (1 / full) for (n, _), p in zip(named_parts, parts)}
            print("       time share: " + ", ".join(f"{n} {s:.0%}" for n, s in share.items())
                  + f", regressor {(1 / regr) / (1 / full):.0%}")
        print(f"ratio batch10k/batch1 throughput: {rate(lambda b: score(pipe, b), recs) / rate(lambda b: score(pipe, b), recs[:1]):.0f}x")


if __name__ == "__main__":
    main()
