"""`iscore-train`: the training and scheduled-retraining command.

Exit codes (also in the README):
  0  success (trained / promoted / listed / rolled back / pinned)
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
import os
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscore import registry
from iscore.model import ModelConfig
from iscore.settings import Settings, SettingsError
from training.data import PRESETS, DataError, resolve_spec
from training.progress import Progress, phase, rows
from iscore.redact import public_argv
from iscore.redact import redact_url as redact

if TYPE_CHECKING:  # annotations only: the commands import what they run where they run it
    from training.fitting import TrainOptions
    from training.train import RunOptions

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DATA, EXIT_ARTIFACT, EXIT_REFUSED, EXIT_LOCKED = 0, 1, 2, 3, 4, 10, 11

# The desk weight `train --select` chose for the shipped model (the rule and the figures: README,
# "Desk head"). Plain `train` and the nightly `retrain` use it, so a scheduled retrain rebuilds the
# shipped recipe.
DEFAULT_DESK_WEIGHT = 1.0

Log = Callable[[str], Any]


class UsageError(Exception):
    """A command line that cannot work, found after parsing (e.g. a report directory that is a file)."""


# The one place where failures become exit codes. First match wins: DataError and SettingsError
# are ValueErrors, so they come before the ValueError catch-all (bad option values).
ERROR_EXITS: tuple[tuple[type[BaseException], int, str], ...] = (
    (registry.LockHeld, EXIT_LOCKED, "locked"),
    (SettingsError, EXIT_USAGE, "settings error"),
    (UsageError, EXIT_USAGE, "usage error"),
    (DataError, EXIT_DATA, "data error"),
    (registry.ArtifactError, EXIT_ARTIFACT, "artifact error"),
    (ValueError, EXIT_USAGE, "error"),
)


def exit_code_for(exc: BaseException) -> tuple[int, str]:
    """The documented exit code and log label of an exception (1 = unexpected)."""
    for kind, code, label in ERROR_EXITS:
        if isinstance(exc, kind):
            return code, label
    return EXIT_ERROR, "unexpected error"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """What to read and how it becomes a target: every command that loads data."""
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


def _add_training_args(p: argparse.ArgumentParser) -> None:
    """Cross-source data, production feedback and the model: only commands that fit a model."""
    p.add_argument("--cross-preset", choices=sorted(PRESETS), help="also evaluate on this data set")
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
    m.add_argument("--raw-text", action="store_true",
                   help="read the raw text (names, case, punctuation, kickers) as versions before #14 did, "
                        "instead of the cleaned text (README, 'Names and presentation')")
    m.add_argument("--desk-weight", type=float, default=DEFAULT_DESK_WEIGHT,
                   help=f"weight of the hard-vs-soft-news desk head against engagement (default {DEFAULT_DESK_WEIGHT:g}; "
                        "0 = engagement only; off automatically when the data has no desk labels)")
    m.add_argument("--desk-alpha", type=float, default=ModelConfig.desk_alpha, help="desk head regularisation")
    m.add_argument("--magnitude-prior", default=",".join(f"{w:g}" for w in ModelConfig.magnitude_prior),
                   metavar="TOLL,SCALE",
                   help="fixed weights of the toll (a quantity where a headline speaks of harm) and the size axis "
                        "in the editorial blend (default %(default)s; 0,0 = off; README, 'Magnitude')")
    m.add_argument("--embeddings", help="static word vectors (.npz from `iscore-train embed`) to add as features")
    m.add_argument("--no-embeddings", action="store_true",
                   help="do not reuse the champion's word vectors (by default a champion's vectors are reused)")
    m.add_argument("--select", action="store_true",
                   help="choose features and regularisation by time-ordered cross-validation first")
    m.add_argument("--out-of-core", action="store_true",
                   help="stream the file in chunks (hashing features + SGD) for data larger than memory")
    m.add_argument("--chunksize", type=int, default=100_000, help="rows per chunk with --out-of-core")


def _add_gate_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gate (challenger against the CURRENT champion)")
    g.add_argument("--tolerance", type=float, default=0.01, help="allowed drop of the primary metric")
    g.add_argument("--report-dir", help="where a refused challenger's report goes (default: ISCORE_STATE_DIR/reports)")


def _spec(args: argparse.Namespace, settings: Settings) -> Any:
    return resolve_spec(
        args.preset, args.data, data_dir=settings.data_dir, text=args.text_col, label=args.label_col,
        time=args.time_col, source=args.source_col, label_kind=args.label_kind, label_blend=args.label_blend,
        url=args.url_col,
    )


def _data_options(args: argparse.Namespace) -> TrainOptions:
    """How the data becomes targets and the hold-out (for commands that do not fit a model)."""
    from training.fitting import TrainOptions

    return TrainOptions(target=args.target, window=args.window, holdout_fraction=args.holdout, min_rows=args.min_rows)


def recipe_options(args: argparse.Namespace) -> TrainOptions:
    """The model recipe and target options of a command that fits a model."""
    from dataclasses import replace

    if not args.desk_weight >= 0:
        raise ValueError(f"--desk-weight must be 0 (engagement only) or more, not {args.desk_weight}")
    if not args.desk_alpha > 0:
        raise ValueError(f"--desk-alpha must be above 0, not {args.desk_alpha}")
    try:
        prior = tuple(float(w) for w in args.magnitude_prior.split(","))
    except ValueError:
        prior = ()
    if len(prior) != 2 or not all(0 <= w < float("inf") for w in prior):
        raise ValueError(f"--magnitude-prior must be two weights of 0 or more, like 1,0.25; not {args.magnitude_prior!r}")
    cfg = ModelConfig(alpha=args.alpha, max_word_features=args.max_word_features,
                      char_ngrams=args.char_ngrams, use_source=not args.no_source,
                      clean_text=not args.raw_text,
                      out_of_core=args.out_of_core,
                      # The streaming path has no desk head (it fits one SGD regressor).
                      desk_weight=0.0 if args.out_of_core else args.desk_weight,
                      desk_alpha=args.desk_alpha, magnitude_prior=prior)
    return replace(_data_options(args), model=cfg)


def _report_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.report_dir) if args.report_dir else settings.state_dir / "reports"


def _run_options(args: argparse.Namespace, settings: Settings, argv: list[str], reg: Path, *,
                 gated: bool) -> RunOptions:
    """How `train` / `retrain` trains, gates and publishes, from the arguments."""
    from training.report import unwritable_dir_reason
    from training.train import FeedbackSource, RunOptions

    out = Path(args.out) if getattr(args, "out", None) else None
    publish = not getattr(args, "no_publish", False)
    report_dir = _report_dir(args, settings) if gated else None
    if args.report_dir and not gated:
        # Only a gate refusal writes a report outside the version; a flag that does nothing is a mistake.
        raise UsageError("--report-dir is used when the gate runs (retrain, or train --promote); "
                         "an ungated version's report is written inside the version")
    # Fail fast: a report directory that cannot exist would only show after minutes of training.
    for flag, path in (("--report-dir", report_dir), ("--out", (out or reg) if publish else None)):
        if path is not None and (why := unwritable_dir_reason(path)):
            raise UsageError(f"{flag} {path}: {why}")
    feedback = (FeedbackSource(url=args.feedback_db or settings.database_url, weight=args.feedback_weight,
                               days=args.feedback_days) if args.feedback else None)
    return RunOptions(
        select=args.select, chunksize=args.chunksize,
        embeddings=Path(args.embeddings) if args.embeddings else None, reuse_champion_vectors=not args.no_embeddings,
        cross=resolve_spec(args.cross_preset, data_dir=settings.data_dir) if args.cross_preset else None,
        feedback=feedback, tolerance=args.tolerance, force=getattr(args, "force", False), publish=publish,
        out=out, keep=args.keep, report_dir=report_dir, command="iscore-train " + shlex.join(public_argv(argv)),
        data_dir=settings.data_dir,
    )


def _train(args: argparse.Namespace, settings: Settings, log: Log, argv: list[str], *, gated: bool) -> int:
    """`train` (gated with --promote) and `retrain` (always gated)."""
    from training.train import train_version

    reg = Path(args.registry or settings.model_dir)
    run = _run_options(args, settings, argv, reg, gated=gated)
    opts = recipe_options(args)
    result = train_version(_spec(args, settings), opts, run, registry=reg, gated=gated, log=log)
    summary = {"primary": result.metrics["primary"], "behaviour": result.metrics["behaviour"]["pairs"]}
    if not run.publish:
        print(json.dumps({"version": None, "published": False, "promoted": False, **summary,
                          "metrics": result.metrics}))
        return EXIT_OK
    if result.refused:
        assert result.decision is not None
        log(f"the champion stays; nothing was published{' (--force promotes anyway)' if args.cmd == 'train' else ''}")
        print(json.dumps({"promoted": False, "reason": result.decision.reason,
                          "challenger": result.decision.challenger, "champion": result.decision.champion}))
        return EXIT_REFUSED
    reply: dict[str, Any] = {"version": result.version, "promoted": result.promoted, **summary}
    if gated:
        reply["forced"] = result.forced
    if result.registry != reg:
        reply["registry"] = str(result.registry)
    print(json.dumps(reply))
    return EXIT_OK


def _embed(args: argparse.Namespace, settings: Settings, log: Log) -> int:
    from training import fitting
    from training.embed import distill_vectors, save, training_words

    try:
        import model2vec  # noqa: F401
    except ImportError:
        raise UsageError("embed needs the optional extra: pip install -e '.[embed]'") from None
    words: list[str] = []
    if args.preset or args.data:
        prepared = fitting.prepare(_spec(args, settings), _data_options(args), log=log)
        words = training_words(prepared.df["text"])
    phase(log, "distilling", f"all-MiniLM-L6-v2 to {args.dims} dims (offline)")
    data = distill_vectors(words, pca_dims=args.dims, max_extra=args.extra_words)
    save(Path(args.out), data)
    log(f"wrote {args.out}: {data['vectors'].shape[0]} words x {data['vectors'].shape[1]} dims")
    print(json.dumps(data["provenance"]))
    return EXIT_OK



def _evaluate(args: argparse.Namespace, settings: Settings, log: Log) -> int:
    from training import fitting
    from training.evaluate import time_split

    reg = Path(args.registry or settings.model_dir)
    version = args.version or registry.current_version(reg)
    if version is None:
        raise registry.ArtifactError(f"no CURRENT version in {reg}")
    loaded = registry.load_version(reg, version)
    opts = _data_options(args)
    prepared = fitting.prepare(_spec(args, settings), opts, log=log)
    scope = "all" if args.all else "holdout"
    data = prepared.df if args.all else time_split(prepared.df, opts.holdout_fraction)[1]
    phase(log, "evaluating", f"{version} on {rows(len(data))} ({'all rows' if args.all else 'newest hold-out'})")
    m = fitting.evaluate_candidate(loaded.pipeline, data)
    # evaluate_candidate names its metrics "holdout"; here they describe `scope`.
    print(json.dumps({"version": version, "scope": scope, "rows": len(data), "metrics": m["holdout"],
                      "primary": m["primary"], "behaviour": m["behaviour"]}, indent=2))
    return EXIT_OK


def _list(args: argparse.Namespace, reg: Path) -> int:
    from training.listing import format_versions

    versions = registry.list_versions(reg)
    print(json.dumps(versions, indent=2) if args.json else format_versions(versions))
    current = registry.current_version(reg)
    if current is not None and not any(v.get("version") == current for v in versions):
        # The service falls back to another version then; say so where people look first.
        print(f"warning: CURRENT names {current}, which is not in this registry; the service falls back "
              "to LAST_GOOD or the newest version that verifies", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="iscore-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", help="model registry directory (default: ISCORE_MODEL_DIR or models/)")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fit, evaluate and publish a version (gated only with --promote)")
    _add_data_args(t)
    _add_training_args(t)
    t.add_argument("--promote", action="store_true",
                   help="also make it CURRENT if the gate accepts it against the champion (as `retrain`)")
    t.add_argument("--force", action="store_true",
                   help="with --promote: promote even if the gate refuses (recorded as forced in history.jsonl)")
    t.add_argument("--out", metavar="DIR", help="publish into another registry directory (an experiment: "
                                                "the registry's CURRENT is untouched and nothing is pruned)")
    t.add_argument("--no-publish", action="store_true", help="fit, evaluate and print the metrics; write nothing")
    t.add_argument("--keep", type=int, default=None, help="versions to keep (default ISCORE_KEEP_VERSIONS)")
    _add_gate_args(t)
    r = sub.add_parser("retrain", help="the scheduled job: train, gate against CURRENT, promote or refuse")
    _add_data_args(r)
    _add_training_args(r)
    r.add_argument("--keep", type=int, default=None, help="versions to keep (default ISCORE_KEEP_VERSIONS)")
    _add_gate_args(r)
    e = sub.add_parser("evaluate", help="evaluate a published version on a data set's newest hold-out")
    _add_data_args(e)
    e.add_argument("--version", help="default: CURRENT")
    e.add_argument("--all", action="store_true", help="evaluate on every row, not only the hold-out")
    em = sub.add_parser("embed", help="distil static word vectors from all-MiniLM-L6-v2 (needs the embed extra)")
    _add_data_args(em)
    em.add_argument("--out", default="var/embeddings/minilm-static-64.npz")
    em.add_argument("--dims", type=int, default=64, help="PCA dimensions")
    em.add_argument("--extra-words", type=int, default=10_000, help="frequent training words added to the vocabulary")
    ls = sub.add_parser("list", help="list versions (CURRENT and pinned marked)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    rb = sub.add_parser("rollback", help="point CURRENT back at the version promoted before it (or --to VERSION)")
    rb.add_argument("--to", help="version to switch to")
    for name, text in (("pin", "keep a version whatever pruning decides"), ("unpin", "remove a pin")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("version")
    pr = sub.add_parser("prune", help="delete old versions (never CURRENT, pinned or rollback targets)")
    pr.add_argument("--keep", type=int, default=None)
    for sp in sub.choices.values():  # a usage error found later shows the subcommand's own usage
        sp.set_defaults(usage_parser=sp)
    return p


def _check_args(args: argparse.Namespace) -> None:
    """Argument combinations argparse cannot express; each is a usage error (exit 2)."""
    parser = args.usage_parser
    if args.cmd in ("train", "retrain", "evaluate") and not (args.preset or args.data):
        parser.error(f"{args.cmd} needs data: --preset NAME ({', '.join(sorted(PRESETS))}; files under "
                     "ISCORE_DATA_DIR) or --data FILE --text-col COLUMN --label-col COLUMN")
    if getattr(args, "data", None) and not args.preset and not (args.text_col and args.label_col):
        parser.error("--data FILE needs --text-col and --label-col (or a --preset whose mapping fits the file)")
    if args.cmd == "train":
        if args.force and not args.promote:
            parser.error("--force only overrides the gate of --promote")
        if args.promote and (args.out or args.no_publish):
            parser.error("--promote makes the registry's CURRENT; --out and --no-publish are for experiments")
        if args.out and args.no_publish:
            parser.error("--out publishes, --no-publish does not: choose one")


def _run(args: argparse.Namespace, argv: list[str], log: Log) -> int:
    settings = Settings.from_env()
    if getattr(args, "keep", 0) is None:
        args.keep = settings.keep_versions
    reg = Path(args.registry or settings.model_dir)
    if args.cmd == "train":
        return _train(args, settings, log, argv, gated=args.promote)
    if args.cmd == "retrain":
        return _train(args, settings, log, argv, gated=True)
    if args.cmd == "embed":
        return _embed(args, settings, log)
    if args.cmd == "evaluate":
        return _evaluate(args, settings, log)
    if args.cmd == "list":
        return _list(args, reg)
    with registry.registry_lock(reg) as stale:
        if stale:
            log(f"removed {len(stale)} temporary entries left by killed runs: {', '.join(stale)}")
        if args.cmd == "rollback":
            v = registry.rollback(reg, args.to)
            log(f"CURRENT -> {v}")
            print(json.dumps({"current": v}))
        elif args.cmd in ("pin", "unpin"):
            changed = (registry.pin if args.cmd == "pin" else registry.unpin)(reg, args.version)
            log(f"{args.version} {args.cmd}ned" if changed else f"{args.version} was {'already' if args.cmd == 'pin' else 'not'} pinned")
            print(json.dumps({"version": args.version, "pinned": args.cmd == "pin", "changed": changed}))
        elif args.cmd == "prune":
            keep = max(args.keep, 1)
            kept = registry.kept_versions(reg, keep)
            print(json.dumps({"removed": registry.prune(reg, keep), "kept": kept}))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the documented exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(args)
    with Progress(sys.stderr, redact=redact) as log:
        try:
            return _run(args, argv, log)
        except BrokenPipeError:
            # The reader went away (`iscore-train list | head`): not worth a traceback. As the
            # Python docs advise, point stdout at devnull so the exit-time flush stays quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_ERROR
        except Exception as e:
            code, label = exit_code_for(e)
            log(f"{label}: {e}")
            if code == EXIT_ERROR:
                log(traceback.format_exc())
            return code


if __name__ == "__main__":
    sys.exit(main())
