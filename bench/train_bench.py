"""Training benchmark: wall time and peak RSS of the documented training commands.

Run: python bench/train_bench.py [--rows 1000000]   (needs ../shared/data)
1. in memory, Hacker News (20k rows);  2. in memory, fb_news (317k rows), with and without the
desk head;  3. out of core, a synthetic file of --rows rows made by resampling and recombining fb_news
   headlines (first half of one title + second half of another).
Each run is a fresh `iscore-train train` process into a temporary registry; peak RSS is that
process's own (wait4).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SHARED, machine  # noqa: E402


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "training.cli", *args], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(p.stderr.read().decode()[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


def synthesise(n: int, path: Path) -> None:
    import numpy as np
    import pandas as pd

    src = pd.read_csv(SHARED / "fb_news_pages" / "fb_news_link_posts.csv.gz",
                      usecols=["page", "link_name", "status_published", "num_shares", "num_comments"], dtype=str).dropna()
    rng = np.random.default_rng(0)
    chunk = 200_000
    with open(path, "w") as f:
        f.write("page,link_name,status_published,num_shares,num_comments\n")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            a = src.iloc[rng.integers(0, len(src), m)].reset_index(drop=True)
            b = src["link_name"].iloc[rng.integers(0, len(src), m)].reset_index(drop=True)
            wa, wb = a["link_name"].str.split(), b.str.split()
            text = [" ".join(x[: max(1, len(x) // 2)] + y[len(y) // 2:]) for x, y in zip(wa, wb)]
            out = pd.DataFrame({"page": a["page"], "link_name": text, "status_published": a["status_published"],
                                "num_shares": a["num_shares"], "num_comments": a["num_comments"]})
            out.to_csv(f, header=False, index=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is absent")
    tmp = Path(tempfile.mkdtemp(prefix="iscore-trainbench-"))
    env = {**os.environ, "ISCORE_DATA_DIR": str(SHARED)}
    print(f"# training benchmark; {machine()}")
    results = {}
    for name, cmd in (
        ("hn 20k in memory", ["train", "--preset", "hn"]),
        ("fb_news 317k in memory", ["train", "--preset", "fb_news"]),
        ("fb_news 317k, no desk head", ["train", "--preset", "fb_news", "--desk-weight", "0"]),
    ):
        wall, rss, code = run(["--registry", str(tmp / "reg"), *cmd], env)
        results[name] = wall
        print(f"{name:<34} {wall:7.1f} s  peak RSS {rss:7.0f} MiB  exit {code}")
    print(f"ratio fb_news with / without the desk head wall time: "
          f"{results['fb_news 317k in memory'] / results['fb_news 317k, no desk head']:.2f}x")
    big = tmp / "synthetic.csv"
    t0 = time.perf_counter()
    synthesise(args.rows, big)
    print(f"(synthesised {args.rows:,} rows in {time.perf_counter() - t0:.0f} s, {big.stat().st_size / 2**20:.0f} MiB)")
    cmd = ["--registry", str(tmp / "reg"), "train", "--preset", "fb_news", "--data", str(big), "--out-of-core",
           "--chunksize", "100000"]
    wall, rss, code = run(cmd, env)
    name = f"synthetic {args.rows // 1000}k out of core"
    results[name] = wall
    print(f"{name:<34} {wall:7.1f} s  peak RSS {rss:7.0f} MiB  exit {code}")
    print(f"ratio out-of-core {args.rows // 1000}k / in-memory 20k wall time: "
          f"{results[name] / results['hn 20k in memory']:.1f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
