"""Commands on content: import contacts, templates, campaigns, sends, captured mail."""

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from steadymail.cli.context import console, make_ctx
from steadymail.domain.schedule import parse_local
from steadymail.domain.states import MessageState, SendState
from steadymail.errors import ValidationError
from steadymail.services import campaigns, captured, csv_import, engagement, sends, templates


def import_cmd(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV with an email column")
    ],
    list_name: Annotated[str, typer.Option("--list", help="list to import into (created if new)")],
) -> None:
    """Import contacts from CSV; bad rows are reported by line and the good ones kept."""
    ctx = make_ctx()
    raw = file.read_bytes()
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("import", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = csv_import.import_contacts(ctx.engine, ctx.clock, raw, list_name, progress)
    console.print(
        f"[green]{report.imported}[/] imported into [bold]{list_name}[/], "
        f"{report.skipped_existing} already on the list, "
        f"[red]{report.rejected}[/] rejected"
    )
    for e in report.errors[:50]:
        console.print(f"  line {e.line}: {e.reason}", highlight=False)
    if report.rejected > 50:
        console.print(f"  … and {report.rejected - 50} more")


template_app = typer.Typer(help="Templates (Jinja2, sandboxed).", no_args_is_help=True)


@template_app.command("create")
def template_create(
    name: str,
    subject: Annotated[str, typer.Option(help="subject template")],
    html: Annotated[Path | None, typer.Option(help="file with the HTML part")] = None,
    text: Annotated[Path | None, typer.Option(help="file with the text part")] = None,
) -> None:
    """Create a template after checking its syntax."""
    ctx = make_ctx()
    tid = templates.create_template(
        ctx.engine,
        ctx.clock,
        name,
        subject,
        html.read_text(encoding="utf-8") if html else "",
        text.read_text(encoding="utf-8") if text else "",
    )
    console.print(f"template [bold]{name}[/] created (id {tid})")


def send_cmd(
    name: str,
    list_name: Annotated[str, typer.Option("--list")],
    template: Annotated[str, typer.Option()],
    from_addr: Annotated[str | None, typer.Option("--from")] = None,
    watch: Annotated[bool, typer.Option(help="follow progress until the send ends")] = False,
    at: Annotated[
        str | None, typer.Option(help="start then, not now: '2026-12-01 09:00' (with --tz)")
    ] = None,
    tz: Annotated[
        str | None, typer.Option(help="the time zone of --at, e.g. Europe/Berlin or UTC")
    ] = None,
) -> None:
    """Create a campaign for a list and start sending it (now, or --at a time)."""
    ctx = make_ctx()
    if tz is not None and at is None:
        raise ValidationError("--tz goes with --at")
    ref: int | str = int(template) if template.isdigit() else template
    send_id = campaigns.create_campaign(
        ctx.engine,
        ctx.clock,
        ctx.settings,
        name=name,
        list_name=list_name,
        template=ref,
        from_addr=from_addr,
    )
    if at is not None:
        _scheduled(ctx, send_id, at, tz)
        return
    info = campaigns.start(ctx.engine, ctx.clock, ctx.settings, send_id)
    console.print(
        f"send [bold]{send_id}[/] started: {info.messages} messages in "
        f"{info.batches} batches, {info.suppressed} suppressed"
    )
    if watch:
        _watch([send_id])


def _counts_line(p: sends.SendProgress) -> str:
    parts = [f"{k}={v}" for k, v in sorted(p.counts.items())]
    return " ".join(parts) + (
        f" resent_after_crash={p.resent_after_crash}" if p.resent_after_crash else ""
    )


# Messages still to be sent: a send's progress bar counts the others as done.
_OPEN = {MessageState.QUEUED, MessageState.INFLIGHT, MessageState.DEFERRED}
_LIVE = {SendState.RUNNING, SendState.PAUSED}


def _watch(ids: list[int]) -> None:
    ctx = make_ctx()
    with Progress(
        TextColumn("send {task.fields[sid]} {task.fields[state]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {i: bar.add_task("", sid=i, state="", detail="", total=1) for i in ids}
        while True:
            live = False
            for sid, task in tasks.items():
                p = campaigns.status(ctx.engine, sid)
                done = sum(v for k, v in p.counts.items() if k not in _OPEN)
                bar.update(
                    task,
                    completed=done,
                    total=max(1, p.total),
                    state=p.state.value,
                    detail=_counts_line(p),
                )
                live |= p.state in _LIVE
            if not live:
                return
            time.sleep(0.5)


def status_cmd(
    send_id: Annotated[int | None, typer.Argument()] = None,
    watch: Annotated[bool, typer.Option(help="follow until no send is running")] = False,
) -> None:
    """Progress of one send, or a table of all sends."""
    ctx = make_ctx()
    if send_id is not None:
        if watch:
            _watch([send_id])
            return
        p = campaigns.status(ctx.engine, send_id)
        when = ""
        if p.state == SendState.SCHEDULED and p.scheduled_at is not None:
            when = f" (starts {datetime.fromtimestamp(p.scheduled_at, UTC):%Y-%m-%d %H:%M:%S} UTC)"
        console.print(
            f"send {send_id} [bold]{p.name}[/] {p.state}{when}: {p.total} messages; "
            f"{_counts_line(p)}; open batches {p.open_batches}"
        )
        return
    rows = sends.listing(ctx.engine)
    if watch:
        _watch([r.id for r in rows if r.state in _LIVE])
        return
    table = Table("id", "name", "kind", "state", "total", "progress")
    for r in rows:
        p = campaigns.status(ctx.engine, r.id)
        table.add_row(str(r.id), r.name, r.kind.value, r.state.value, str(r.total), _counts_line(p))
    console.print(table)


def schedule_cmd(
    send_id: int,
    at: Annotated[str, typer.Option(help="when it starts: '2026-12-01 09:00' (with --tz)")],
    tz: Annotated[
        str | None, typer.Option(help="the time zone of --at, e.g. Europe/Berlin or UTC")
    ] = None,
) -> None:
    """Schedule a draft campaign, or move a scheduled one (`steadymail cancel` drops it)."""
    _scheduled(make_ctx(), send_id, at, tz)


def _scheduled(ctx: Any, send_id: int, at: str, tz: str | None) -> None:
    when = campaigns.schedule(ctx.engine, ctx.clock, send_id, parse_local(at), tz)
    utc = datetime.fromtimestamp(when, UTC)
    wait = max(0.0, when - ctx.clock.now())
    inn = f"{wait / 86400:,.1f} days" if wait >= 2 * 86400 else f"{wait:,.0f} s"
    console.print(
        f"send [bold]{send_id}[/] scheduled: starts {utc:%Y-%m-%d %H:%M:%S} UTC (in {inn})"
    )


def _steer(action: str) -> Any:
    def command(send_id: int) -> None:
        ctx = make_ctx()
        state = campaigns.change(ctx.engine, ctx.clock, send_id, action)
        console.print(f"send {send_id} is now {state.value}")

    command.__doc__ = f"{action.capitalize()} a send." + (
        " A scheduled one is dropped before it starts." if action == "cancel" else ""
    )
    return command


pause_cmd, resume_cmd, cancel_cmd = _steer("pause"), _steer("resume"), _steer("cancel")


def captured_cmd(
    limit: Annotated[int, typer.Option()] = 20,
    to: Annotated[str | None, typer.Option(help="only messages to this address")] = None,
    show: Annotated[
        int | None, typer.Option(help="write one message's bytes, as received, to stdout")
    ] = None,
) -> None:
    """Messages the built-in capture server received, newest first."""
    ctx = make_ctx()
    mailbox = captured.open_mailbox(ctx.settings.resolved_capture_db())
    if show is not None:
        # The bytes themselves: a terminal renderer would re-wrap folded header lines (and drop
        # their leading whitespace), showing something other than what was received.
        sys.stdout.buffer.write(captured.raw(mailbox, show))
        sys.stdout.flush()
        return
    table = Table("id", "received", "from", "to", "subject", "size")
    for r in captured.recent(mailbox, limit, to):
        table.add_row(
            str(r.id),
            time.strftime("%H:%M:%S", time.localtime(r.received_at)),
            r.mail_from,
            r.rcpt_to,
            r.subject,
            str(r.size),
        )
    console.print(table)
    console.print(f"{captured.count(mailbox)} captured in all")


def stats_cmd(send_id: int) -> None:
    """Engagement of a send: opens, clicks (human and machine apart), unsubscribes, links."""
    ctx = make_ctx()
    st = engagement.send_stats(ctx.engine, send_id)
    table = Table("", "total", "unique", "machine")
    table.add_row("opens", str(st.opens_total), str(st.opens_unique), str(st.opens_machine))
    table.add_row("clicks", str(st.clicks_total), str(st.clicks_unique), str(st.clicks_machine))
    console.print(f"send {send_id}: {st.delivered} delivered, {st.unsubscribes} unsubscribed")
    console.print(table)
    links = Table("link", "url", "clicks", "unique", "machine")
    for link in st.links:
        links.add_row(
            str(link.link),
            link.url,
            str(link.clicks_total),
            str(link.clicks_unique),
            str(link.clicks_machine),
        )
    console.print(links)
