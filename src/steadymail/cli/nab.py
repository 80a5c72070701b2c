"""`steadymail nab`: run a detector over a NAB corpus and score it with NAB's rules."""

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console
from steadymail.cli.numbers import finite
from steadymail.config import load_settings
from steadymail.monitor.anomaly import names
from steadymail.monitor.anomaly.grid import settings_of
from steadymail.monitor.nab.corpus import iter_series, read_profiles
from steadymail.monitor.nab.crossval import Candidate, CvResult, cross_validate
from steadymail.monitor.nab.runner import run_detector, score_results

nab_app = typer.Typer(help="The Numenta Anomaly Benchmark.", no_args_is_help=True)

CorpusOpt = Annotated[
    Path, typer.Option("--corpus", help="a NAB checkout (data/, labels/, config/)")
]


@nab_app.command("run")
def nab_run(
    corpus: CorpusOpt,
    out: Annotated[Path, typer.Option("--out", help="results directory to write")],
    detector: Annotated[str, typer.Option(help=f"one of: {', '.join(names())}")] = "steadymail",
) -> None:
    """Write <out>/<detector>/<category>/<detector>_<file>.csv for every labelled file."""
    if detector not in names():
        raise typer.BadParameter(f"unknown detector {detector!r}; known: {', '.join(names())}")
    started = time.perf_counter()
    rows = run_detector(corpus, out, detector)
    elapsed = time.perf_counter() - started
    console.print(f"{rows} points scored by {detector} in {elapsed:.1f} s -> {out / detector}")


@nab_app.command("score")
def nab_score(
    corpus: CorpusOpt,
    results: Annotated[Path, typer.Option("--results", help="results directory to read")],
    detector: Annotated[str, typer.Option(help="the results subdirectory to score")],
    threshold: Annotated[
        float | None,
        typer.Option(
            help="fixed threshold to score at too; default: anomaly_threshold setting",
            callback=finite,
        ),
    ] = None,
) -> None:
    """Print the standard, low-FP and low-FN scores (optimised threshold and fixed threshold)."""
    fixed = threshold if threshold is not None else load_settings().anomaly_threshold
    result = score_results(corpus, results, detector, fixed)
    table = Table(title=f"{detector}: {result.files} files, {result.windows} windows")
    table.add_column("profile")
    table.add_column("threshold", justify="right")
    table.add_column("raw", justify="right")
    table.add_column("score", justify="right")
    for r in result.optimised:
        table.add_row(r.profile, f"{r.threshold:.6f} (optimised)", f"{r.raw:.4f}", f"{r.score:.2f}")
    for r in result.fixed or []:
        table.add_row(r.profile, f"{r.threshold:.6f} (fixed)", f"{r.raw:.4f}", f"{r.score:.2f}")
    console.print(table)


@nab_app.command("cv")
def nab_cv(
    corpus: CorpusOpt,
    folds: Annotated[int, typer.Option(help="folds; files of one source share a fold", min=2)] = 5,
    detector: Annotated[
        list[str] | None,
        typer.Option(help=f"repeatable; default all: {', '.join(names())}"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="the production threshold, scored too; default: anomaly_threshold setting",
            callback=finite,
        ),
    ] = None,
) -> None:
    """Cross-validate by file: constants and thresholds chosen on K-1 folds, the held-out fold
    scored; prints each fold, the mean and spread, and the pooled held-out score."""
    chosen = detector or names()
    unknown = [d for d in chosen if d not in names()]
    if unknown:
        raise typer.BadParameter(f"unknown detector {unknown[0]!r}; known: {', '.join(names())}")
    fixed = threshold if threshold is not None else load_settings().anomaly_threshold
    series = list(iter_series(corpus))
    profiles = read_profiles(corpus)
    for name in chosen:
        candidates = [Candidate(label, make) for label, make in settings_of(name)]
        started = time.perf_counter()
        result = cross_validate(name, series, candidates, profiles, folds, fixed)
        _print_cv(result, len(candidates), time.perf_counter() - started)


def _print_cv(result: CvResult, settings: int, seconds: float) -> None:
    table = Table(
        title=f"{result.detector}: {settings} setting(s) of its constants, "
        f"{len(result.folds)} folds ({seconds:.0f} s)"
    )
    for column in ("fold", "files", "windows", "chosen on the other folds", "threshold", "score"):
        table.add_column(column, justify="left" if column.startswith("chosen") else "right")
    for f in result.folds:
        score = "-" if f.score is None else f"{f.score:.2f}"
        table.add_row(
            str(f.fold), str(f.files), str(f.windows), f.candidate, f"{f.threshold:.4f}", score
        )
    console.print(table)
    for p in result.profiles:
        console.print(
            f"  {p.profile}: held-out pooled {p.pooled:.2f}, "
            f"fold mean {p.mean:.2f} ± {p.spread:.2f}"
        )
    for profile, fixed_score in result.fixed:
        console.print(
            f"  {profile}: default constants at the production threshold "
            f"{result.fixed_threshold:g}, every file: {fixed_score:.2f}"
        )
