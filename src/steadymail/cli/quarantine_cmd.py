"""Commands for the person on call: quarantined messages (list, release) and `requeue SEND`."""

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, local_time, make_ctx
from steadymail.services import quarantine

quarantine_app = typer.Typer(
    help="Messages quarantined because every worker that sent them died: list, release.",
    no_args_is_help=True,
)


@quarantine_app.command("list")
def quarantine_list(
    send: Annotated[int | None, typer.Option("--send", help="only this send's")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array on stdout")] = False,
) -> None:
    """Quarantined messages: id, send, address, crashes, last error, when."""
    ctx = make_ctx()
    rows = quarantine.listing(ctx.engine, send, limit)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows]))
        return
    if not rows:
        console.print("no quarantined messages" + (f" in send {send}" if send else ""))
        return
    table = Table("id", "send")
    table.add_column("email", no_wrap=True)
    table.add_column("crashes")
    table.add_column("quarantined", no_wrap=True)
    table.add_column("last error", overflow="fold")
    for r in rows:
        table.add_row(
            str(r.id),
            str(r.send_id),
            r.email,
            str(r.crashes),
            local_time(r.quarantined_at),
            r.last_error or "",
        )
    console.print(table)


@quarantine_app.command("release")
def quarantine_release(
    message_ids: Annotated[
        list[int] | None, typer.Argument(help="quarantined message ids", show_default=False)
    ] = None,
    send: Annotated[int | None, typer.Option("--send", help="a send (with --all)")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="every quarantined message of --send")
    ] = False,
) -> None:
    """Put quarantined messages back in the queue, due now: MESSAGE_ID... or --send ID --all."""
    if message_ids and (send is not None or all_):
        raise typer.BadParameter("give message ids, or --send ID --all, not both")
    if not message_ids and send is not None and not all_:
        raise typer.BadParameter(f"add --all to release every quarantined message of send {send}")
    if not message_ids and (send is None or not all_):
        raise typer.BadParameter("give message ids, or --send ID --all")
    ctx = make_ctx()
    if message_ids:
        out = quarantine.release(ctx.engine, ctx.clock, messages=list(message_ids))
    else:
        out = quarantine.release(ctx.engine, ctx.clock, send_id=send)
    if not out["released"]:
        console.print(f"send {send} has no quarantined messages")
        return
    ids = ", ".join(map(str, out["messages"]))
    console.print(f"released {out['released']} message(s): {ids}", highlight=False)


def requeue_cmd(
    send_id: Annotated[int, typer.Argument(help="the send whose stuck work to requeue")],
) -> None:
    """Make a send's stuck work claimable now: leases of dead workers, deferred messages."""
    ctx = make_ctx()
    c = quarantine.requeue(ctx.engine, ctx.clock, ctx.settings, send_id)
    console.print(
        f"send {send_id}: {c.dead_owner_leases} lease(s) of dead workers expired now, "
        f"{c.expired_leases} already lapsed, {c.live_leases} held by live workers left "
        f"alone; {c.deferred} deferred message(s) due now ({c.batches_due} batch(es))",
        highlight=False,
    )
