"""`steadymail messages`: the message log, every recipient's history; `steadymail reports`:
what the inbound server kept."""

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, local_time, make_ctx
from steadymail.services import inbound_reports, message_log
from steadymail.services.message_log import MessageEvent

messages_app = typer.Typer(
    help="The message log: what happened to each message, found by recipient.",
    no_args_is_help=True,
)


def _when(t: float | None) -> str:
    """Local time to the millisecond: a message's events are often within one second."""
    return local_time(t) + (f".{int(t * 1000) % 1000:03d}" if t else "")


def _timeline(events: list[MessageEvent]) -> Table:
    table = Table("when", "event", "code", "detail", box=None, pad_edge=False)
    for e in events:
        kind = e.kind + (" (machine)" if e.machine else "")
        table.add_row(_when(e.at), kind, str(e.smtp_code or ""), e.detail[:200])
    return table


@messages_app.command("search")
def messages_search(
    to: Annotated[str, typer.Option("--to", help="the recipient (any spelling)")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array on stdout")] = False,
) -> None:
    """Messages to an address, newest first, each with its history."""
    ctx = make_ctx()
    rows = message_log.search(ctx.engine, to, limit)
    if as_json:
        typer.echo(json.dumps([{**asdict(m), "state": m.state.value} for m in rows]))
        return
    if not rows:
        console.print(f"no message to {to}")
        return
    for m in rows:
        console.print(
            f"[bold]message {m.id}[/] to {m.email} — send {m.send_id} ({m.send_name}): "
            f"[bold]{m.state.value}[/] after {m.attempts} attempt(s)"
        )
        console.print(_timeline(m.events))
        console.print()


@messages_app.command("show")
def messages_show(message_id: int) -> None:
    """One message's history."""
    ctx = make_ctx()
    console.print(_timeline(message_log.history(ctx.engine, message_id)))


reports_app = typer.Typer(
    help="What `steadymail inbound` kept: bounces, complaints, and mail it could not read.",
    no_args_is_help=True,
)


@reports_app.command("list")
def reports_list(
    status: Annotated[str | None, typer.Option(help="received, applied, ignored or review")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """Reports, newest first."""
    ctx = make_ctx()
    table = Table("id", "received", "rcpt", "kind", "status", "message", "detail")
    for r in inbound_reports.listing(ctx.engine, status, limit):
        table.add_row(
            str(r.id),
            _when(r.received_at),
            r.rcpt,
            r.kind,
            r.status,
            str(r.message_id or "—"),
            r.detail[:80],
        )
    console.print(table)


@reports_app.command("show")
def reports_show(report_id: int) -> None:
    """The report as received, byte for byte (on stdout)."""
    ctx = make_ctx()
    sys.stdout.buffer.write(inbound_reports.raw(ctx.engine, report_id))


@reports_app.command("reprocess")
def reports_reprocess(report_id: int) -> None:
    """Read a kept report again and apply it."""
    ctx = make_ctx()
    out = inbound_reports.reprocess(ctx.engine, ctx.clock, ctx.settings, report_id)
    console.print(f"report {report_id}: {out.kind.value}, {out.status}: {out.detail}")
