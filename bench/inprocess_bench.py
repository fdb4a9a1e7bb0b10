"""In-process scoring throughput of the shipped model: its pipeline beside its compiled form, in one run.

Run: python bench/inprocess_bench.py [--model-dir models] [--seconds 1]
Prints headlines/s per batch size for the pipeline (iscore.scoring.score), the compiled scorer
reading text in Python (ISCORE_C_READER=0, as before the C reader), the compiled scorer reading
text in C (iscore/_speedups.c; the default where built) and the whole reply path (source
resolution, scoring, triage, shrinkage) with the pipeline and with the compiled scorer (triage's
language cache cleared before every call: every headline is new to it), the ratios measured in the
same run, and where the compiled scorer's time goes (batch 1: the C read, then each part's share;
batch 10,000: the C read, the parts' numpy blocks and shares, the calibration); batch 1 also with a
new headline every call (cold caches). Pinned to one BLAS thread (and Python is one core), so
figures are per core. Record `uptime` beside the figures.
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
from iscore.scoring import _context, reply_items, score  # noqa: E402
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


def forget_triage(pipe: object) -> None:
    """Empty triage's memories (the language cache and ``pipe``'s context's triage per text): every headline new."""
    _classify.cache_clear()
    _context(pipe).triage.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    ap.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = ap.parse_args()
    model = registry.load_current(Path(args.model_dir))
    pipe = model.pipeline
    t0 = time.perf_counter()
    compiled = compile_pipeline(pipe)  # text read in C where iscore._speedups is built
    t_compile = time.perf_counter() - t0
    python_text = compile_pipeline(pipe, c_reader=False)  # the same scorer reading text in Python (before the C reader)
    t0 = time.perf_counter()
    worst = verify(compiled, verification_records())
    t_verify = time.perf_counter() - t0
    load_language_model()
    texts = headlines(10_000)
    recs = as_records(texts, ["reuters"] * len(texts))
    heads = [(str(i), t, "reuters") for i, t in enumerate(texts)]
    kw = dict(red_threshold=60.0, explain_top=3, with_explain=False)
    print(f"# in-process scoring, model {model.version}\n# {machine()}, 1 thread; load {os.getloadavg()}")
    print(f"# compile {t_compile * 1000:.0f} ms, verify {t_verify * 1000:.0f} ms (largest difference {worst:.2g}); "
          f"text read in C: {'yes' if compiled.reader is not None else 'no (iscore._speedups not built)'}")
    if compiled.reader is not None:
        fallback = compiled.reader.reader.read(texts)[0]
        print(f"# headlines C does not read (left to Python): {len(fallback)} of {len(texts)}")
    secs = args.seconds
    with threadpool_limits(1):
        print(f"{'batch':>6} {'pipeline h/s':>13} {'py-text h/s':>12} {'compiled h/s':>13} {'x pipe':>7} {'x py-text':>9} "
              f"{'reply(pipe) h/s':>16} {'reply(comp) h/s':>16} {'ratio':>6} {'triage h/s':>11}")
        for bs in (1, 100, 10_000):
            b, h = recs[:bs], heads[:bs]
            full = rate(lambda x: score(pipe, x), b, secs)
            py = rate(python_text.score, b, secs)
            comp = rate(compiled.score, b, secs)
            # Every headline new to triage's language cache, as a stream of fresh headlines is.
            rp = rate(lambda x: (forget_triage(pipe), reply_items(pipe, x, **kw)), h, secs)
            rc = rate(lambda x: (forget_triage(pipe), reply_items(pipe, x, scorer=compiled, **kw)), h, secs)
            tr = rate(lambda x: (_classify.cache_clear(), [triage(t) for _, t, _ in x]), h, secs)
            print(f"{bs:>6} {full:>13,.0f} {py:>12,.0f} {comp:>13,.0f} {comp / full:>7.1f} {comp / py:>9.1f} "
                  f"{rp:>16,.0f} {rc:>16,.0f} {rc / rp:>6.1f} {tr:>11,.0f}")
        # Batch 1 again in CPU time (time.process_time), which other processes' load disturbs less than wall time.
        one = recs[:1]
        cpu = {name: cpu_us(fn, one) for name, fn in (("pipeline", lambda x: score(pipe, x)),
                                                      ("python text", python_text.score),
                                                      ("compiled", compiled.score))}
        print(f"batch 1, CPU per call: pipeline {cpu['pipeline']:.0f} us, compiled reading text in Python "
              f"{cpu['python text']:.1f} us, compiled {cpu['compiled']:.1f} us, ratio {cpu['pipeline'] / cpu['compiled']:.1f}")
        # Batch 1 with a new headline every call (the same one above stays in the CPU caches; a stream of
        # new headlines meets the vocabulary and the coefficients cold), in CPU time too.
        stream = [[r] for r in recs]
        print(f"batch 1, a new headline every call, CPU per call: pipeline {cpu_each(lambda x: score(pipe, x), stream[:1500]):.0f} us, "
              f"compiled {cpu_each(compiled.score, stream):.1f} us")
        if compiled.reader is not None:
            # Where one headline's time goes: C reads it, then each part's share in Python floats.
            text = one[0]["text"]
            reader, blend = compiled.reader, compiled.blends[0]
            got = reader.read_one(text)
            parts1 = {"C read": cpu_us(lambda x: reader.read_one(text), one)}
            for p in compiled.parts:
                method = reader.share_method(p.compiled)
                coef = p.coef[blend]
                arg = one[0]["source"] if method is None else got[method[1]]
                fn = p.compiled.share_of if method is None else method[0]
                parts1[p.name] = cpu_us(lambda x, fn=fn, arg=arg, coef=coef: fn(arg, coef), one)
            raw1 = float(compiled.raw(one)[0])
            parts1["scale"] = cpu_us(lambda x: compiled.scales[blend].one(raw1), one)
            print("compiled, batch 1, CPU us per call: " + ", ".join(f"{k} {v:.1f}" for k, v in parts1.items())
                  + f"; the rest (records, the loop, the array) {cpu['compiled'] - sum(parts1.values()):.1f}")
            # And a batch of 10,000: one C call, then numpy per part, then the calibration.
            shares = {"C read": 1 / rate(lambda x: reader.reader.read(x), texts, secs)}
            blocks = reader.blocks(texts)
            shares["C parts' blocks (numpy)"] = 1 / rate(reader.blocks, texts, secs) - shares["C read"]
            for p in compiled.parts:
                if id(p.compiled) in blocks:
                    shares[f"{p.name} share"] = 1 / rate(lambda x, blk=blocks[id(p.compiled)], c=p.coef[blend]:
                                                         blk.raw(c, len(x)), texts, secs)
                else:
                    shares[p.name] = 1 / rate(lambda x, c=p.compiled, k=p.coef[blend]: c.raw(x, {}, k), recs, secs)
            raw = compiled.raw(recs)
            shares["calibration"] = 1 / rate(lambda x: compiled.scales[blend](raw), recs, secs)
            total = 1 / rate(compiled.score, recs, secs)
            print(f"compiled, batch 10,000, us per headline: total {total * 1e6:.2f}; each step alone: "
                  + ", ".join(f"{k} {v * 1e6:.2f}" for k, v in shares.items())
                  + f"; the rest {(total - sum(shares.values())) * 1e6:.2f}")


if __name__ == "__main__":
    main()
