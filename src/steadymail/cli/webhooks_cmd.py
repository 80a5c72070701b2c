"""`steadymail webhooks`: customers' event webhooks, and `webhooks run`, the dispatcher."""

import asyncio
import signal
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, local_time, make_ctx, setup_logging
from steadymail.domain.schedule import parse_local, resolve
from steadymail.domain.webhooks import EVENT_TYPES
from steadymail.services import webhooks
from steadymail.services.runtime import build_presence
from steadymail.webhooks.dispatcher import Dispatcher

webhooks_app = typer.Typer(
    help="Event webhooks: every delivery event pushed to a customer's URL, signed.",
    no_args_is_help=True,
)


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    events: Annotated[str, typer.Option(help=f"comma-separated: {', '.join(EVENT_TYPES)}")],
    secret: Annotated[str | None, typer.Option(help="whsec_...; generated if absent")] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Send these events to URL; prints the signing secret once."""
    ctx = make_ctx()
    chosen = [e.strip() for e in events.split(",") if e.strip()]
    added = webhooks.add(ctx.engine, ctx.clock, ctx.settings, url, chosen, secret, description)
    console.print(f"webhook [bold]{added.webhook.id}[/] → {url}: {', '.join(added.webhook.events)}")
    console.print(f"signing secret (shown once): {added.secret}", highlight=False)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Webhooks with their state."""
    ctx = make_ctx()
    table = Table("id", "url", "events", "enabled", "failing since", "last success", "last error")
    for w in webhooks.listing(ctx.engine):
        table.add_row(
            str(w.id),
            w.url,
            ",".join(w.events),
            "yes" if w.enabled else f"no: {w.disabled_reason}",
            local_time(w.failing_since),
            local_time(w.last_success_at),
            w.last_error[:60],
        )
    console.print(table)


@webhooks_app.command("show")
def webhooks_show(webhook_id: int) -> None:
    """One webhook and its deliveries by state."""
    ctx = make_ctx()
    w, counts = webhooks.get(ctx.engine, webhook_id)
    console.print(
        f"webhook {w.id} → {w.url} ({'enabled' if w.enabled else 'disabled: ' + w.disabled_reason})"
        f"\n  events: {', '.join(w.events)}\n  deliveries: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + (
            f"\n  failing since {local_time(w.failing_since)}: {w.last_error}"
            if w.failing_since
            else ""
        )
    )


@webhooks_app.command("enable")
def webhooks_enable(webhook_id: int) -> None:
    """Enable a webhook (its waiting events go out at once)."""
    ctx = make_ctx()
    webhooks.set_enabled(ctx.engine, webhook_id, True)
    console.print(f"webhook {webhook_id} enabled")


@webhooks_app.command("disable")
def webhooks_disable(
    webhook_id: int, reason: Annotated[str, typer.Option(help="why (required)")]
) -> None:
    """Disable a webhook (its events keep waiting in the outbox)."""
    ctx = make_ctx()
    webhooks.set_enabled(ctx.engine, webhook_id, False, reason)
    console.print(f"webhook {webhook_id} disabled")


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: int) -> None:
    """Remove a webhook and its outbox."""
    ctx = make_ctx()
    webhooks.remove(ctx.engine, webhook_id)
    console.print(f"webhook {webhook_id} removed")


@webhooks_app.command("replay")
def webhooks_replay(
    webhook_id: int,
    since: Annotated[str, typer.Option(help="'2026-11-30 08:00' (with --tz, or an offset)")],
    tz: Annotated[str | None, typer.Option(help="the time zone of --since")] = None,
) -> None:
    """Deliver again every event since a time."""
    ctx = make_ctx()
    queued = webhooks.replay(ctx.engine, ctx.clock, webhook_id, resolve(parse_local(since), tz))
    console.print(f"{queued} events queued again for webhook {webhook_id}")


@webhooks_app.command("run")
def webhooks_run() -> None:
    """Run the dispatcher: the outbox read, batches signed and sent, failures retried."""
    setup_logging()
    ctx = make_ctx()
    dispatcher = Dispatcher(ctx.engine, ctx.settings, ctx.clock)
    presence = build_presence(ctx.settings, ctx.engine, ctx.clock, "webhooks")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dispatcher.stop)
        await presence.start()
        try:
            await dispatcher.run()
        finally:
            await presence.stop("graceful")

    asyncio.run(main())
