"""`steadymail replay`: the outage behind steadymail, compressed, and healed."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, err_console
from steadymail.cli.numbers import finite
from steadymail.sim.replay import Replay, timeline_rows


def replay_cmd(
    fault_after_guard: Annotated[
        bool, typer.Option(help="the fault shows only after the rollout completed")
    ] = False,
    safety_net: Annotated[
        str, typer.Option(help="on, or off: no gates, no revert, no quarantine (the outage)")
    ] = "on",
    time_scale: Annotated[
        float, typer.Option(help="stretch every phase this many times", callback=finite)
    ] = 1.0,
    database_url: Annotated[
        str,
        typer.Option(
            help="PostgreSQL with {region} in the name (a database per region); "
            "default: SQLite files"
        ),
    ] = "",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="work directory (default: a temporary one)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Three regions and the control plane, steady traffic, and a faulty link-tracking change
    rolled out R3 -> R1 -> R2: the outage's timeline beside the replay's."""
    if safety_net not in ("on", "off"):
        raise typer.BadParameter("--safety-net is on or off")
    mode = "off" if safety_net == "off" else ("after-guard" if fault_after_guard else "canary")
    quiet = as_json
    replay = Replay(
        mode,
        time_scale,
        database_url,
        directory,
        log=(lambda _line: None)
        if quiet
        else (lambda line: err_console.print(line, highlight=False)),
    )
    result = replay.run()
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    table = Table("", "the outage (as told)", f"this replay ({mode})")
    for row in timeline_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(f"first alert: {result.first_alert}", highlight=False)
    console.print(f"decision: {result.decision or 'none'}", highlight=False)
    console.print(
        f"duplicates received {result.duplicates}, counted by the platform as re-sent after a "
        f"crash {result.duplicates_counted}",
        highlight=False,
    )
    console.print(
        f"delivered {result.sent}, quarantined {result.quarantined}, still undelivered "
        f"{result.undelivered}; whole replay {result.total_s:.0f} s",
        highlight=False,
    )
    if result.incident_file:
        console.print(f"incident export: {result.incident_file}", highlight=False)
