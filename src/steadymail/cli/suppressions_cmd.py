"""`steadymail suppressions`: list, search, add, remove, import, export, and the audit log."""

import getpass
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, local_time, make_ctx
from steadymail.services import suppressions
from steadymail.services.suppressions import Suppression

suppressions_app = typer.Typer(
    help="Addresses that must not be mailed, per stream (marketing, transactional, all).",
    no_args_is_help=True,
)

Stream = Annotated[
    str, typer.Option(help="marketing (newsletters), transactional (the rest) or all")
]
By = Annotated[str | None, typer.Option(help="who does it (default: the login name)")]


def _who(by: str | None) -> str:
    return by or getpass.getuser()


def _show(rows: list[Suppression], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([{**asdict(r), "stream": r.stream.value} for r in rows]))
        return
    if not rows:
        console.print("no suppressions")
        return
    table = Table("email", "stream", "reason", "since", "message", "detail")
    for r in rows:
        table.add_row(
            r.email,
            r.stream.value,
            r.reason,
            local_time(r.created_at),
            str(r.message_id or "—"),
            r.detail[:60],
        )
    console.print(table)


@suppressions_app.command("list")
def suppressions_list(
    stream: Annotated[str | None, typer.Option(help="only this stream")] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="only this reason: hard_bounce, soft_bounce, complaint, unsubscribed, manual"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array on stdout")] = False,
) -> None:
    """Suppressions, newest first."""
    ctx = make_ctx()
    _show(suppressions.listing(ctx.engine, stream, reason, None, limit, offset), as_json)


@suppressions_app.command("search")
def suppressions_search(
    text: Annotated[str, typer.Argument(help="part of the address, e.g. @example.com")],
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Suppressions whose address contains TEXT."""
    ctx = make_ctx()
    _show(suppressions.listing(ctx.engine, None, None, text, limit), as_json)


@suppressions_app.command("add")
def suppressions_add(
    emails: Annotated[list[str], typer.Argument(help="addresses")],
    stream: Stream = "all",
    note: Annotated[str, typer.Option(help="why (kept in the log)")] = "",
    by: By = None,
) -> None:
    """Suppress addresses by hand (logged with who and why)."""
    ctx = make_ctx()
    added = suppressions.add(ctx.engine, ctx.clock, emails, stream, _who(by), note)
    console.print(f"{added} suppressed in {stream}, {len(emails) - added} already were")


@suppressions_app.command("remove")
def suppressions_remove(
    email: str,
    reason: Annotated[str, typer.Option(help="why it is lifted (required, kept in the log)")],
    stream: Annotated[
        str | None, typer.Option(help="only this stream (default: every one)")
    ] = None,
    by: By = None,
) -> None:
    """Lift an address's suppressions: mail may reach it again (logged with who and why)."""
    ctx = make_ctx()
    gone = suppressions.remove(ctx.engine, ctx.clock, email, stream, _who(by), reason)
    for s in gone:
        console.print(
            f"lifted {s.email} {s.stream.value} ({s.reason} since {local_time(s.created_at)})"
        )


@suppressions_app.command("import")
def suppressions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    stream: Stream = "all",
    reason: Annotated[str, typer.Option(help="for rows without a reason column")] = "manual",
    by: By = None,
) -> None:
    """Suppress every address of a CSV (`email` column; optional `stream`, `reason`)."""
    ctx = make_ctx()
    if file.stat().st_size > ctx.settings.max_import_bytes:
        console.print(f"[red]{file} is larger than max_import_bytes; nothing imported[/]")
        raise typer.Exit(2)
    report = suppressions.import_csv(
        ctx.engine, ctx.clock, file.read_bytes(), _who(by), stream, reason
    )
    console.print(
        f"[green]{report.added}[/] suppressed, {report.already} already were, "
        f"[red]{report.rejected}[/] rows refused"
    )
    for e in report.errors:
        console.print(f"  line {e.line}: {e.reason}")


@suppressions_app.command("export")
def suppressions_export(
    out: Annotated[Path | None, typer.Option("--out", help="a file (default: stdout)")] = None,
) -> None:
    """The whole list as CSV."""
    ctx = make_ctx()
    if out is None:
        for chunk in suppressions.export_csv(ctx.engine):
            sys.stdout.write(chunk)
        return
    with out.open("w", encoding="utf-8", newline="") as f:
        for chunk in suppressions.export_csv(ctx.engine):
            f.write(chunk)
    console.print(f"written to {out}")


@suppressions_app.command("log")
def suppressions_log(
    email: Annotated[str | None, typer.Option(help="only this address")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 100,
) -> None:
    """Suppressions people added and removed, newest first, with who and why."""
    ctx = make_ctx()
    table = Table("when", "action", "email", "stream", "reason", "by", "why")
    for c in suppressions.log(ctx.engine, email, limit):
        table.add_row(local_time(c.at), c.action, c.email, c.stream.value, c.reason, c.by, c.detail)
    console.print(table)
