"""In-process scoring throughput of the shipped model: its pipeline beside its compiled form, in one run.

Run: python bench/inprocess_bench.py [--model-dir models] [--seconds 1]
Prints headlines/s per batch size for the pipeline (iscore.scoring.score), the compiled scorer
(iscore.compiled) and the whole reply path (source resolution, scoring, triage, shrinkage) with each
(triage's language cache cleared before every call: every headline is new to it),
the ratios measured in the same run, and where the compiled scorer's time goes (cleaning once per
headline, then each part alone); batch 1 also with a new headline every call (cold caches). Pinned to one BLAS
thread (and Python is one core), so figures are per core. Record `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.common import headlines, machine  # noqa: E402
from iscore import registry  # noqa: E402
from iscore.compiled import compile_pipeline, verification_records, verify  # noqa: E402
from iscore.features import as_records  # noqa: E402
from iscore.scoring import reply_items, score  # noqa: E402
from iscore.triage import _classify, load_language_model, triage  # noqa: E402


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


def cpu_us(fn, batch, calls: int = 1500) -> float:
    """CPU microseconds per fn(batch) call (best of 3 rounds)."""
    for _ in range(50):
        fn(batch)
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(calls):
            fn(batch)
        best = min(best, (time.process_time() - t0) / calls * 1e6)
    return best


def cpu_each(fn, batches, rounds: int = 3) -> float:
    """CPU microseconds per fn(batch) call, each call on the next batch of ``batches`` (best of ``rounds`` passes)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for b in batches:
            fn(b)
        best = min(best, (time.process_time() - t0) / len(batches) * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    ap.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = ap.parse_args()
    model = registry.load_current(Path(args.model_dir))
    pipe = model.pipeline
    t0 = time.perf_counter()
    compiled = compile_pipeline(pipe)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    worst = verify(compiled, verification_records())
    t_verify = time.perf_counter() - t0
    load_language_model()
    texts = headlines(10_000)
    recs = as_records(texts, ["reuters"] * len(texts))
    heads = [(str(i), t, "reuters") for i, t in enumerate(texts)]
    kw = dict(red_threshold=60.0, explain_top=3, with_explain=False)
    print(f"# in-process scoring, model {model.version}\n# {machine()}, 1 thread; load {os.getloadavg()}")
    print(f"# compile {t_compile * 1000:.0f} ms, verify {t_verify * 1000:.0f} ms (largest difference {worst:.2g})")
    secs = args.seconds
    with threadpool_limits(1):
        print(f"{'batch':>6} {'pipeline h/s':>13} {'compiled h/s':>13} {'ratio':>6} {'reply(pipe) h/s':>16} "
              f"{'reply(comp) h/s':>16} {'ratio':>6} {'triage h/s':>11}")
        for bs in (1, 100, 10_000):
            b, h = recs[:bs], heads[:bs]
            full = rate(lambda x: score(pipe, x), b, secs)
            comp = rate(compiled.score, b, secs)
            # Every headline new to triage's language cache, as a stream of fresh headlines is.
            rp = rate(lambda x: (_classify.cache_clear(), reply_items(pipe, x, **kw)), h, secs)
            rc = rate(lambda x: (_classify.cache_clear(), reply_items(pipe, x, scorer=compiled, **kw)), h, secs)
            tr = rate(lambda x: (_classify.cache_clear(), [triage(t) for _, t, _ in x]), h, secs)
            print(f"{bs:>6} {full:>13,.0f} {comp:>13,.0f} {comp / full:>6.1f} {rp:>16,.0f} {rc:>16,.0f} "
                  f"{rc / rp:>6.1f} {tr:>11,.0f}")
        # Batch 1 again in CPU time (time.process_time), which other processes' load disturbs less than wall time.
        one = recs[:1]
        cpu = {name: cpu_us(fn, one) for name, fn in (("pipeline", lambda x: score(pipe, x)),
                                                      ("compiled", compiled.score))}
        print(f"batch 1, CPU per call: pipeline {cpu['pipeline']:.0f} us, compiled {cpu['compiled']:.1f} us, "
              f"ratio {cpu['pipeline'] / cpu['compiled']:.1f}")
        # Batch 1 with a new headline every call (the same one above stays in the CPU caches; a stream of
        # new headlines meets the vocabulary and the coefficients cold), in CPU time too.
        stream = [[r] for r in recs]
        print(f"batch 1, a new headline every call, CPU per call: pipeline {cpu_each(lambda x: score(pipe, x), stream[:1500]):.0f} us, "
              f"compiled {cpu_each(compiled.score, stream):.1f} us")
        # Batch 1 part by part (CPU), each part with the cleaned text at hand, the cleaning and the scale apart
        # (the per-record path: each part's share of one headline in Python floats).
        parts1 = {}
        blend = compiled.blends[0]
        text, source = one[0]["text"], one[0]["source"]
        for c in compiled.cleaners:
            parts1["cleaning"] = parts1.get("cleaning", 0.0) + cpu_us(lambda x, c=c: c.cleaner.clean(text), one)
            c.clean(text)
        for p in compiled.parts:
            coef = p.coef[blend]
            share = ((lambda x, c=p.compiled, k=coef: c.share_of(source, k)) if hasattr(p.compiled, "share_of")
                     else (lambda x, c=p.compiled, k=coef: c.share(text, k)))
            parts1[p.name] = cpu_us(share, one)
        compiled._forget()
        raw1 = float(compiled.raw(one)[0])
        parts1["scale"] = cpu_us(lambda x: compiled.scales[blend].one(raw1), one)
        print("compiled, batch 1, CPU us per call: " + ", ".join(f"{k} {v:.1f}" for k, v in parts1.items())
              + f"; the rest (records, the loop, the array) {cpu['compiled'] - sum(parts1.values()):.1f}")
        # Where the compiled scorer's time goes at batch 10,000: each part's block, then the calibration.
        batch = recs
        shares = {}
        # Cleaning once per headline (the parts share one cleaner), then each part with the cleaned texts at hand.
        texts = [r["text"] for r in batch]
        for c in compiled.cleaners:
            shares["cleaning"] = shares.get("cleaning", 0.0) + 1 / rate(
                lambda x, c=c: [c.cleaner.clean(t) for t in x], texts, secs)
            for t in texts:
                c.clean(t)
        for p in compiled.parts:
            shares[p.name] = 1 / rate(lambda x, c=p.compiled: c.block(x, {}), batch, secs)
        compiled._forget()
        raw = compiled.raw(batch)
        shares["calibration"] = 1 / rate(lambda x: compiled.scales[compiled.blends[0]](raw), batch, secs)
        total = 1 / rate(compiled.score, batch, secs)
        print("compiled, batch 10,000, us per headline: total " f"{total * 1e6:.1f}; each part timed alone "
              "with the cleaned texts at hand: "
              + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in shares.items()))


if __name__ == "__main__":
    main()
