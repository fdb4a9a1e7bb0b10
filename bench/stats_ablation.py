"""Ablation: the README's default training recipe with and without the headline statistics (#14 item 1).

Run: python bench/stats_ablation.py   (reads ../shared/data or ISCORE_DATA_DIR; ~90 s; writes nothing)

Trains the default recipe of `iscore-train train --preset fb_news --cross-preset news_2019` twice
through training.train.train_version (publish off, gated against the repository's CURRENT):
once as is, once with `use_stats=False` (no length, punctuation or capitals statistics), and
prints hold-out Spearman, behaviour pairs, the held-out robustness suite (name effect, surface
effect by kind, magnitude), the windowed real-stream share and the gate's decision, in one table.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT  # noqa: E402
from iscore.settings import Settings  # noqa: E402
from training import cli  # noqa: E402
from training.data import resolve_spec  # noqa: E402
from training.train import RunOptions, train_version  # noqa: E402


def main() -> None:
    """Train both recipes and print one row each."""
    s = Settings()
    args = cli.build_parser().parse_args(["train", "--preset", "fb_news", "--cross-preset", "news_2019"])
    base = cli.recipe_options(args)  # exactly what the CLI trains by default
    print("| recipe | s | hold-out Spearman | pairs | name effect | surface effect (caps / ! / BREAKING / quotes) "
          "| magnitude | window top-10 share | gate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, opts in (("default", base), ("no statistics", replace(base, model=replace(base.model, use_stats=False)))):
        t0 = time.time()
        r = train_version(resolve_spec("fb_news", data_dir=s.data_dir), opts,
                          RunOptions(cross=resolve_spec("news_2019", data_dir=s.data_dir), publish=False),
                          registry=ROOT / "models", gated=True, log=lambda _m: None)
        m = r.metrics
        rb, k = m["robustness"]["test"], m["robustness"]["test"]["surface_by_kind"]
        print(f"| {name} | {time.time() - t0:.0f} | {m['primary']['value']:.4f} | {m['behaviour']['pairs']:.1%} "
              f"| {rb['name_effect']:.1f} | {rb['surface_effect']:.1f} ({k['upper']:.1f} / {k['exclaim']:.1f} / "
              f"{k['breaking']:.1f} / {k['quotes']:.1f}) | {rb['magnitude']:.1%} "
              f"| {m['stream']['model']['window_top10_share']:.3f} | {'promote' if r.decision and r.decision.promote else 'refuse'} |",
              flush=True)


if __name__ == "__main__":
    main()
