"""Train one model version: fit (or stream), gate it against the champion, record, publish and prune.

:func:`train_version` is what `iscore-train train` and `retrain` run; the CLI only turns arguments
into a :class:`~training.fitting.TrainOptions` and a :class:`RunOptions`, prints the
:class:`TrainResult` and maps exceptions to exit codes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from iscore import registry as reg_ops
from iscore.model import feature_parts
from iscore.redact import redact_url as redact
from training import fitting
from training.data import DataError, DatasetSpec
from training.fitting import GateDecision, Prepared, TrainOptions
from training.progress import phase, rows

Log = Callable[[str], Any]


@dataclass(frozen=True)
class FeedbackSource:
    """Production labels to train on as well, read from the feedback database."""

    url: str
    weight: float = 2.0
    days: int = 0  # only labels observed in the last N days (0 = all)


@dataclass(frozen=True)
class RunOptions:
    """How one run trains, gates and publishes (the model recipe itself is the TrainOptions)."""

    select: bool = False  # choose features and regularisation by time-ordered CV first
    chunksize: int = 100_000  # rows per chunk when options.model.out_of_core
    embeddings: Path | None = None  # static word vectors (.npz) to add as features
    reuse_champion_vectors: bool = True  # without `embeddings`, reuse the champion's word vectors
    cross: DatasetSpec | None = None  # also evaluate on this data set
    feedback: FeedbackSource | None = None
    tolerance: float = 0.01  # allowed drop of the primary metric at the gate
    force: bool = False  # when gated: promote even if the gate refuses (recorded as forced)
    publish: bool = True  # False: fit and evaluate only, write nothing
    out: Path | None = None  # publish into another registry (an experiment: no CURRENT, no pruning)
    keep: int = 5  # versions to keep when pruning
    report_dir: Path | None = None  # where a refused challenger's report goes (None: not written)
    command: str = ""  # the (redacted) command line recorded in the manifest
    data_dir: Path | None = None  # data paths are recorded relative to it


@dataclass(frozen=True)
class TrainResult:
    """What one run produced: the version (if published), its metrics and the gate's decision."""

    version: str | None
    metrics: dict[str, Any]
    decision: GateDecision | None  # None when the run was not gated
    published: bool
    promoted: bool  # CURRENT now points at `version`
    forced: bool  # promoted although the gate refused
    registry: Path  # where the version was (or would have been) published
    report: Path | None  # the version's report.html, or the refused challenger's report

    @property
    def refused(self) -> bool:
        """The gate refused the challenger and nothing overrode it."""
        return self.decision is not None and not self.decision.promote and not self.forced


def train_version(spec: DatasetSpec, options: TrainOptions, run: RunOptions = RunOptions(), *,
                  registry: Path, gated: bool, log: Log = print) -> TrainResult:
    """Train on ``spec``, gate against ``registry``'s CURRENT when ``gated``, then publish as ``run`` says."""
    from training.evaluate import time_split
    from training.report import render

    opts = options
    out = run.out if run.out is not None else registry
    lock = reg_ops.registry_lock(out) if run.publish else contextlib.nullcontext([])
    with lock as stale:
        if stale:
            log(f"removed {len(stale)} temporary entr{'y' if len(stale) == 1 else 'ies'} left by killed runs: "
                f"{', '.join(stale)}")
        champion = _load_champion(registry, opts, run, gated)
        embedder, emb_info = _resolve_embedder(opts, run, champion, log)
        if embedder is not None:
            opts = replace(opts, model=replace(opts.model, use_embeddings=True))
        t0 = time.perf_counter()
        candidates, cross = None, None
        if opts.model.out_of_core:
            prepared, pipeline, metrics, test = _train_out_of_core(spec, opts, run.chunksize, log)
        else:
            fb_rows, fb_weight = (read_feedback(run.feedback, log), run.feedback.weight) if run.feedback else ([], 1.0)
            prepared = fitting.prepare(spec, opts, fb_rows, fb_weight, log=log)
            log(prepared.report.summary() + (f"; feedback rows {len(fb_rows)}" if fb_rows else ""))
            opts = replace(opts, model=fitting.with_usable_desk(opts.model, prepared.df, log))
            if run.cross is not None:
                cross = fitting.prepare(run.cross, TrainOptions(target=opts.target, window=opts.window), log=log)
            if run.select:
                older, _ = time_split(prepared.df, opts.holdout_fraction)
                from training.select import select

                # The cross set only reports each candidate's stream figures; it never picks one.
                candidates, model = select(older, opts.model, embedder=embedder, log=log,
                                           stream=cross.df if cross is not None else None)
                opts = replace(opts, model=model)
            pipeline, metrics, test = fitting.train_and_evaluate(prepared, opts, embedder=embedder, cross=cross,
                                                                 log=log)
        metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
        if candidates:
            metrics["candidates"] = candidates
        decision, forced = None, False
        if gated:
            champion_metrics = None
            if champion is not None:
                phase(log, "evaluating champion", f"{champion.version} on the same {rows(len(test))}")
                champion_metrics = fitting.evaluate_candidate(champion.pipeline, test)
                if cross is not None and "stream" in metrics:
                    # The same windows as the challenger's, so the gate compares like with like.
                    champion_metrics["stream"] = fitting.stream_metrics(champion.pipeline, cross)
            decision = fitting.gate(metrics, champion_metrics, tolerance=run.tolerance)
            forced = run.force and not decision.promote
            metrics["gate"] = {"promote": decision.promote, "reason": decision.reason, "forced": forced,
                               "champion": champion.version if champion else None,
                               "champion_metrics": champion_metrics}
            log(f"gate: {'PROMOTE' if decision.promote else 'REFUSE'} ({decision.reason})"
                + ("; overridden by --force" if forced else ""))
        manifest = fitting.manifest_for(prepared, opts, metrics, run.command, data_dir=run.data_dir)
        manifest["features"] = fitting.feature_summary(pipeline)
        if emb_info:
            manifest["embeddings"] = emb_info
        result = TrainResult(version=None, metrics=metrics, decision=decision, published=False, promoted=False,
                             forced=forced, registry=out, report=None)
        if not run.publish:
            return result
        phase(log, "report", f"HTML report on {rows(len(test))}")
        preds = pipeline.predict(test)
        if result.refused:
            if run.report_dir is None:
                return result
            written = _write_reports(run.report_dir, manifest, render(manifest, test["y"].to_numpy(), preds), log)
            return replace(result, report=written)
        version = reg_ops.new_version_name(prepared.fingerprint)
        html = render({**manifest, "version": version}, test["y"].to_numpy(), preds)
        phase(log, "publish", str(out / version))
        reg_ops.publish(out, pipeline, manifest, version=version, extra_files={
            "metrics.json": json.dumps(metrics, indent=2).encode(),
            "report.html": html.encode(),
        })
        log(f"published {out / version} (report: {out / version / 'report.html'})")
        if gated:
            assert decision is not None
            reg_ops.set_current(out, version, note={"forced": not decision.promote, "gate": {
                "promote": decision.promote, "reason": decision.reason,
                "challenger": decision.challenger, "champion": decision.champion}})
            log(f"CURRENT -> {version}")
        if out == registry:  # publishing elsewhere is an experiment: it never prunes, here or there
            phase(log, "prune", f"keep {max(run.keep, 1)} (plus CURRENT, pinned and rollback targets)")
            removed = reg_ops.prune(registry, max(run.keep, 1))
            if removed:
                log(f"pruned {len(removed)} old version(s): {', '.join(removed)}")
        return replace(result, version=version, published=True, promoted=gated, report=out / version / "report.html")


def read_feedback(source: FeedbackSource, log: Log = print) -> list[dict[str, Any]]:
    """Current labels from the feedback database, optionally only recent ones."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy.exc import SQLAlchemyError

    from iscore import feedback

    phase(log, "reading feedback", redact(source.url))
    since = datetime.now(timezone.utc) - timedelta(days=source.days) if source.days else None
    try:
        engine = feedback.make_engine(source.url)
        feedback.migrate(engine)
        fb = feedback.read_all(engine, since)
    except SQLAlchemyError as e:
        # An unreachable or broken feedback store is a data problem of this run, not a crash.
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise DataError(f"feedback database {redact(source.url)}: {reason}") from None
    log(f"feedback: {len(fb)} labelled headlines from the database")
    return fb


def _wants_champion_vectors(opts: TrainOptions, run: RunOptions) -> bool:
    return not opts.model.out_of_core and run.embeddings is None and run.reuse_champion_vectors


def _load_champion(registry: Path, opts: TrainOptions, run: RunOptions, gated: bool) -> Any:
    """The CURRENT version when the gate or vector reuse needs it, else None."""
    version = reg_ops.current_version(registry)
    if version is None or not (gated or _wants_champion_vectors(opts, run)):
        return None
    try:
        return reg_ops.load_version(registry, version)
    except reg_ops.ArtifactError as e:
        if gated:
            raise
        raise reg_ops.ArtifactError(f"{e}. `train` reuses the champion's word vectors; give --no-embeddings "
                                    "(or --embeddings FILE) to train without loading it") from None


def _resolve_embedder(opts: TrainOptions, run: RunOptions, champion: Any, log: Log) -> tuple[Any, dict[str, Any] | None]:
    """Static vectors from ``run.embeddings``, else the champion's own (so retrains keep the shipped recipe)."""
    from training.embed import load_embedder

    if opts.model.out_of_core:
        return None, None
    if run.embeddings is not None:
        emb, prov = load_embedder(run.embeddings)
        log(f"word vectors: {run.embeddings.name} ({_shape(emb)})")
        return emb, {**prov, "file": run.embeddings.name}
    if champion is None or not run.reuse_champion_vectors:
        return None, None
    parts = feature_parts(champion.pipeline)
    if "semantic" not in parts:
        log(f"champion {champion.version} has no word vectors: training without (--embeddings FILE adds some)")
        return None, None
    prov = champion.manifest.get("embeddings") or {}
    log(f"word vectors: reusing champion {champion.version}'s ({prov.get('file', 'file unrecorded')}, "
        f"{_shape(parts['semantic'])}; --no-embeddings trains without)")
    return parts["semantic"], {**prov, "reused_from": champion.version}


def _shape(embedder: Any) -> str:
    vectors = getattr(embedder, "vectors", None)
    return "?" if vectors is None else f"{vectors.shape[0]:,} words x {vectors.shape[1]} dims"


def _train_out_of_core(spec: DatasetSpec, opts: TrainOptions, chunksize: int,
                       log: Log) -> tuple[Prepared, Any, dict[str, Any], Any]:
    from training.outofcore import train_streaming

    out = train_streaming(spec, opts, chunksize=chunksize, log=log)
    log(out["report"].summary())
    test = out["test"]
    phase(log, "evaluating", f"hold-out {rows(len(test))} and the behavioural suite")
    metrics = fitting.evaluate_candidate(out["pipeline"], test)
    metrics["split"] = {"train_rows": out["train_rows"], "test_rows": len(test)}
    metrics["baselines"] = {}  # baselines need the training rows in memory: in-memory path only
    # The manifest describes the whole streamed data set; only the hold-out is kept in memory.
    prepared = Prepared(spec=spec, df=test, report=out["report"], fingerprint=out["fingerprint"],
                        span=(out["min_time"], out["max_time"]))
    return prepared, out["pipeline"], metrics, test


def _write_reports(out: Path, manifest: dict[str, Any], html: str, log: Log) -> Path | None:
    """Write the refused challenger's metrics and report; the report's path, or None if it could not be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "refused-metrics.json").write_text(json.dumps(manifest["metrics"], indent=2), encoding="utf-8")
        (out / "refused-report.html").write_text(html, encoding="utf-8")
    except OSError as e:
        # Checked before training; if it broke since, the refusal still stands (exit 10).
        log(f"could not write the refused challenger's report to {out}: {e}")
        return None
    log(f"refused challenger's report written to {out}")
    return out / "refused-report.html"
