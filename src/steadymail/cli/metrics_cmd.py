"""`steadymail metrics`: the region's own time series, as a table with sparklines."""

from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, make_ctx
from steadymail.cli.numbers import finite
from steadymail.services import metrics

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """The last ``width`` values as block characters scaled between their min and max."""
    tail = values[-width:]
    if not tail:
        return ""
    lo, hi = min(tail), max(tail)
    span = hi - lo or 1.0
    return "".join(_BARS[min(7, int((v - lo) / span * 8))] for v in tail)


def metrics_cmd(
    name: Annotated[str | None, typer.Argument(help="one series; default: all of them")] = None,
    minutes: Annotated[float, typer.Option(help="how far back", callback=finite)] = 15,
    resolution: Annotated[str, typer.Option(help="raw or minute")] = "raw",
) -> None:
    """The region's metric series (throughput, deferral rate, latencies…) and anomaly marks."""
    ctx = make_ctx()
    names = (
        [name]
        if name
        else metrics.series_names(ctx.engine, ctx.clock, ctx.settings, minutes, resolution)
    )
    table = Table("series", "last", "min", "max", "points", "recent", "anomalies")
    for n in names:
        s = metrics.series(ctx.engine, ctx.clock, ctx.settings, n, minutes, resolution)
        values = [v for _, v in s["points"]]
        if not values:
            table.add_row(n, "-", "-", "-", "0", "", "")
            continue
        table.add_row(
            n,
            f"{values[-1]:.4g}",
            f"{min(values):.4g}",
            f"{max(values):.4g}",
            str(len(values)),
            sparkline(values),
            "; ".join(f"{m['state']} (score {m['score']})" for m in s["anomalies"]),
        )
    console.print(table)
    if not names:
        console.print(f"no series in the last {minutes:g} minutes (the monitor writes them)")
