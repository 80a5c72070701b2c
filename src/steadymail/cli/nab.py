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
