"""`steadymail`: run the platform's processes and work with its content."""

import asyncio
import json
import os
import signal
import time
from dataclasses import asdict
from typing import Annotated, cast

import typer
import uvloop
from rich.table import Table

from steadymail.cli import content, nab, watch
from steadymail.cli.context import console, err_console, local_time, make_ctx, setup_logging
from steadymail.cli.devkey import dev_key
from steadymail.cli.domain_cmd import domain_app
from steadymail.cli.exit_cmd import changes_cmd, report_exit_cmd
from steadymail.cli.messages_cmd import messages_app, reports_app
from steadymail.cli.metrics_cmd import metrics_cmd
from steadymail.cli.quarantine_cmd import quarantine_app, requeue_cmd
from steadymail.cli.replay_cmd import replay_cmd
from steadymail.cli.rollout_cmd import control_cmd, flags_app, rollout_app
from steadymail.cli.supervisor import Child, Supervisor, exit_reporter, steadymail_argv
from steadymail.cli.suppressions_cmd import suppressions_app
from steadymail.cli.webhooks_cmd import webhooks_app
from steadymail.errors import SteadymailError, ValidationError
from steadymail.services import apikeys, database
from steadymail.services.database import shown_url
from steadymail.services.runtime import build_worker

app = typer.Typer(
    help="steadymail: email sending that never stalls silently.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("import")(content.import_cmd)
app.add_typer(content.template_app, name="template")
app.command("send")(content.send_cmd)
app.command("schedule")(content.schedule_cmd)
app.command("status")(content.status_cmd)
app.command("pause")(content.pause_cmd)
app.command("resume")(content.resume_cmd)
app.command("cancel")(content.cancel_cmd)
app.command("captured")(content.captured_cmd)
app.command("stats")(content.stats_cmd)
app.command("monitor")(watch.monitor_cmd)
app.add_typer(watch.alerts_app, name="alerts")
app.add_typer(watch.incident_app, name="incident")
app.command("workers")(watch.workers_cmd)
app.command("stalls")(watch.stalls_cmd)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(nab.nab_app, name="nab")
app.command("metrics")(metrics_cmd)
app.command("control")(control_cmd)
app.add_typer(rollout_app, name="rollout")
app.add_typer(flags_app, name="flags")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(suppressions_app, name="suppressions")
app.add_typer(messages_app, name="messages")
app.add_typer(reports_app, name="reports")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(domain_app, name="domain")
app.command("requeue")(requeue_cmd)
app.command("report-exit")(report_exit_cmd)
app.command("changes")(changes_cmd)
app.command("replay")(replay_cmd)


@app.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the region database."""
    ctx = make_ctx()
    database.migrate_region(ctx.settings.resolved_database_url())
    console.print(f"database at {shown_url(ctx.settings.resolved_database_url())} is up to date")


@apikey_app.command("create")
def apikey_create(
    name: str,
    scopes: Annotated[
        str,
        typer.Option(
            help="comma-separated: read, write, send, admin (flags, fault injection, "
            "quarantine release and requeue)"
        ),
    ] = "read,write,send",
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    ctx = make_ctx()
    key = apikeys.create_key(ctx.engine, ctx.clock, name, {s.strip() for s in scopes.split(",")})
    console.print(key, highlight=False, markup=False)


@apikey_app.command("list")
def apikey_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """API keys: id, name, prefix (the `sm_<prefix>_` its text starts with), scopes, state.
    Neither a key nor its hash is ever shown."""
    ctx = make_ctx()
    keys = apikeys.list_keys(ctx.engine)
    if as_json:
        print(json.dumps([asdict(k) for k in keys]))
        return
    table = Table("id", "name", "prefix", "scopes", "created", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            k.prefix,
            ",".join(k.scopes),
            local_time(k.created_at),
            local_time(k.revoked_at) if k.revoked_at is not None else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="the key's id or prefix")]) -> None:
    """Revoke an API key: its next request gets 401."""
    ctx = make_ctx()
    info = apikeys.revoke(ctx.engine, ctx.clock, key)
    console.print(f"API key {info.id} ({info.name}, sm_{info.prefix}_…) revoked", highlight=False)


@app.command("worker")
def worker_cmd(
    concurrency: Annotated[int | None, typer.Option(help="batches in flight at once")] = None,
) -> None:
    """Run one sending worker until SIGTERM/SIGINT (graceful: leases are released at once)."""
    setup_logging()
    ctx = make_ctx()
    if concurrency:
        ctx.settings.worker_concurrency = concurrency
    worker = build_worker(ctx.settings, ctx.engine, ctx.clock)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    # uvloop's I/O path is markedly cheaper per SMTP round trip than asyncio's default loop.
    uvloop.run(main())


@app.command("api")
def api_cmd(
    host: Annotated[str | None, typer.Option(help="admin API bind address")] = None,
    port: Annotated[int | None, typer.Option(help="admin API port")] = None,
    public_host: Annotated[str | None, typer.Option(help="public listener bind address")] = None,
    public_port: Annotated[int | None, typer.Option(help="public listener port")] = None,
    listeners: Annotated[str | None, typer.Option(help="both (default), admin or public")] = None,
) -> None:
    """Serve the admin API (/v1, /docs, /metrics) and the public listener (tracking /t/…,
    unsubscribe /u/…) in one process, each on its own address."""
    from steadymail.api.serve import Listeners, Which

    setup_logging()
    ctx = make_ctx()
    s = ctx.settings
    s.api_host, s.api_port = host or s.api_host, port or s.api_port
    s.public_host, s.public_port = public_host or s.public_host, public_port or s.public_port
    which = listeners or s.api_listeners
    if which not in ("both", "admin", "public"):
        raise ValidationError(f"--listeners must be both, admin or public, not {which!r}")
    from steadymail.web import region

    served = Listeners(
        s,
        ctx.engine,
        ctx.clock,
        which=cast(Which, which),
        extend=lambda admin: region.install(admin, s, ctx.engine, ctx.clock),
    )
    if which != "public":
        err_console.print(f"admin API on http://{s.api_host}:{s.api_port}", highlight=False)
        err_console.print(f"console on http://{s.api_host}:{s.api_port}/ui/", highlight=False)
    if which != "admin":
        err_console.print(
            f"public listener on http://{s.public_host}:{s.public_port}", highlight=False
        )
    # uvloop's I/O path is markedly cheaper per click redirect than asyncio's default loop.
    uvloop.run(served.serve_until_signalled())


@app.command("sink")
def sink_cmd(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the built-in SMTP capture server; `steadymail captured` shows what it got."""
    from steadymail.sending.capture import flush_forever, start_sink
    from steadymail.services.captured import open_mailbox

    setup_logging()
    ctx = make_ctx()
    engine = open_mailbox(ctx.settings.resolved_capture_db())
    h, p = host or ctx.settings.sink_host, port or ctx.settings.sink_port
    controller, handler = start_sink(engine, h, p)
    err_console.print(f"capture server listening on {h}:{p}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        flusher = asyncio.create_task(flush_forever(handler))
        await stop.wait()
        flusher.cancel()

    try:
        asyncio.run(main())
    finally:
        controller.stop()
        handler.flush()


@app.command("inbound")
def inbound_cmd(
    host: Annotated[str | None, typer.Option(help="default: inbound_host")] = None,
    port: Annotated[int | None, typer.Option(help="default: inbound_port")] = None,
) -> None:
    """Receive what comes back: bounces to the VERP return paths, feedback-loop complaints
    (fbl@), and List-Unsubscribe mailto requests (unsubscribe@<message_id_domain>)."""
    from steadymail.inbound.server import start_inbound
    from steadymail.tracking.keys import load_tracking_secrets

    setup_logging()
    ctx = make_ctx()
    s = ctx.settings
    secrets = load_tracking_secrets(s)
    h, p = host or s.inbound_host, port or s.inbound_port
    controller, _ = start_inbound(
        ctx.engine,
        secrets.signer,
        s.message_id_domain,
        h,
        p,
        max_size=s.inbound_max_message_size,
        settings=s,
        verp_keys=secrets.verp_keys,
    )
    err_console.print(f"inbound mail (bounces, complaints, unsubscribes) on {h}:{p}")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def _fresh_prometheus_dir() -> None:
    # `up` owns its processes: counters of an earlier run must not be added to this one's.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


@app.command("up")
def up_cmd(
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
    sink: Annotated[bool, typer.Option(help="run the built-in capture server")] = True,
    inbound: Annotated[
        bool, typer.Option(help="run the inbound server (bounces, complaints, unsubscribes)")
    ] = True,
    regions: Annotated[
        str | None, typer.Option(help="several regions and the control plane, e.g. R1,R2,R3")
    ] = None,
    plain_restarts: Annotated[
        bool,
        typer.Option(
            help="restart workers as a plain Restart=always would: no slot names, no exit "
            "reports (the platform must recognise restarts by itself)"
        ),
    ] = False,
) -> None:
    """Run one region on its embedded defaults: migrate, capture server, API, workers."""
    setup_logging()
    ctx = make_ctx()
    s = ctx.settings
    if regions:
        from steadymail.cli.up_regions import up_regions

        names = [r.strip() for r in regions.split(",") if r.strip()]
        up_regions(s, names, workers or s.workers, sink, console, plain_restarts)
        return
    database.migrate_region(s.resolved_database_url())
    _fresh_prometheus_dir()
    dev_key(ctx.engine, s.data_dir / "dev-api-key", ctx.clock)
    children = [Child("api", steadymail_argv("api")), Child("monitor", steadymail_argv("monitor"))]
    if sink:
        children.insert(0, Child("sink", steadymail_argv("sink")))
    if inbound:
        children.append(Child("inbound", steadymail_argv("inbound")))
    children.append(Child("webhooks", steadymail_argv("webhooks", "run")))
    children += [
        Child(f"worker-{i + 1}", steadymail_argv("worker"), named=not plain_restarts)
        for i in range(workers or s.workers)
    ]
    console.print(
        f"[bold]steadymail[/] region {s.region}\n"
        f"  database   {shown_url(s.resolved_database_url())}\n"
        f"  console    http://{s.api_host}:{s.api_port}/ui/   (sign in with the key below)\n"
        f"  API        http://{s.api_host}:{s.api_port}/docs   (key in {s.data_dir}/dev-api-key)\n"
        f"  public     {s.public_url}   (tracking and unsubscribe links)\n"
        f"  SMTP sink  {s.sink_host}:{s.sink_port}   (`steadymail captured` lists mail)\n"
        f"  inbound    {s.inbound_host}:{s.inbound_port}   (bounces, complaints, unsubscribes)\n"
        f"  webhooks   the dispatcher (`steadymail webhooks add URL --events sent,bounced`)\n"
        f"  workers    {workers or s.workers}, restarted if they die\n"
        f"  monitor    stalls, restarts and crash loops become alerts (`steadymail alerts`)\n"
        f"Try: steadymail import examples/contacts.csv --list newsletter\n"
        f"Stop with Ctrl-C.",
        highlight=False,
    )
    time.sleep(0.1)

    Supervisor(children, on_exit=exit_reporter(ctx.engine, ctx.clock)).run_forever()


def main() -> None:
    """Entry point: SteadymailError is printed as one line, without a traceback."""
    try:
        app()
    except SteadymailError as e:
        err_console.print(f"[red]error:[/] {e}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
