"""Commands for watching: the monitor process, alerts, silences, workers, stalls, incidents."""

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, make_ctx, setup_logging
from steadymail.cli.numbers import finite
from steadymail.domain.states import AlertState
from steadymail.monitor.service import Monitor
from steadymail.services import transactional, watching

alerts_app = typer.Typer(help="Alerts: list, acknowledge, silence.", invoke_without_command=True)
incident_app = typer.Typer(help="Incidents.", no_args_is_help=True)


def _when(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "—"


def monitor_cmd() -> None:
    """Run the monitor: service health, stalled sends, alerts and their notifications."""
    setup_logging()
    ctx = make_ctx()

    def send_email(to: list[str], subject: str, text: str) -> None:
        transactional.enqueue(
            ctx.engine,
            ctx.clock,
            ctx.settings,
            to=to,
            subject="{{ s }}",
            text="{{ t }}",
            variables={"s": subject, "t": text},
            stream="alerts",
        )

    monitor = Monitor(ctx.settings, ctx.engine, ctx.clock, send_email)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, monitor.stop)
        await monitor.run()

    asyncio.run(main())


@alerts_app.callback()
def alerts_list(
    typer_ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="resolved ones too")] = False,
) -> None:
    """List firing alerts (or all of them)."""
    if typer_ctx.invoked_subcommand:
        return
    ctx = make_ctx()
    table = Table("id", "state", "severity", "name", "summary", "since", "resolved", "ack")
    for a in watching.list_alerts(ctx.engine, None if all_ else AlertState.FIRING):
        table.add_row(
            str(a.id),
            a.state.value,
            a.severity,
            a.name,
            a.summary,
            _when(a.started_at),
            _when(a.resolved_at),
            a.acked_by or "",
        )
    console.print(table)


@alerts_app.command("show")
def alerts_show(alert_id: int) -> None:
    """One alert with its timeline."""
    ctx = make_ctx()
    a = watching.alert(ctx.engine, alert_id)
    console.print(f"alert {a.id} [bold]{a.name}[/] {a.state}: {a.summary}")
    for e in a.timeline:
        console.print(f"  {_when(e.at)} {e.kind}: {e.detail}", highlight=False)


@alerts_app.command("ack")
def alerts_ack(alert_id: int, by: Annotated[str, typer.Option()] = "cli") -> None:
    """Acknowledge an alert."""
    ctx = make_ctx()
    watching.ack(ctx.engine, ctx.clock, alert_id, by)
    console.print(f"alert {alert_id} acknowledged by {by}")


@alerts_app.command("silence")
def alerts_silence(
    name: str,
    minutes: Annotated[float, typer.Option(callback=finite)] = 60,
    label: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Silence alerts called NAME (and matching every --label) for a while."""
    ctx = make_ctx()
    labels = dict(item.split("=", 1) for item in (label or []))
    sid = watching.silence(ctx.engine, ctx.clock, name, labels, minutes, reason)
    console.print(f"silence {sid}: {name} {labels or ''} for {minutes:g} minutes")


def workers_cmd() -> None:
    """Live processes of the region and their heartbeats."""
    ctx = make_ctx()
    table = Table("slot", "service", "instance", "pid", "host", "version", "started", "beat age")
    for w in watching.workers(ctx.engine, ctx.clock, ctx.settings):
        i = w.instance
        table.add_row(
            i.slot,
            i.service,
            i.instance_id,
            str(i.pid),
            i.host,
            i.version,
            _when(i.started_at),
            f"{w.heartbeat_age}s",
        )
    console.print(table)


def stalls_cmd() -> None:
    """Sends that are stalled right now."""
    ctx = make_ctx()
    rows = watching.stalls(ctx.engine)
    for a in rows:
        console.print(f"alert {a.id} since {_when(a.started_at)}: {a.summary}")
    if not rows:
        console.print("no stalled sends")


@incident_app.command("export")
def incident_export(
    alert_id: int,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="write to this file")] = None,
) -> None:
    """Write an incident's timeline as a Markdown postmortem."""
    ctx = make_ctx()
    text = watching.incident(ctx.engine, ctx.clock, alert_id)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        console.print(text, markup=False, highlight=False)
