"""`steadymail domain`: add a sending domain, print its DNS records, check them, rotate keys."""

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from steadymail.cli.context import console, local_time, make_ctx
from steadymail.services import domains
from steadymail.services.domains import CheckResult, Setup

domain_app = typer.Typer(
    help="Sending domains: DKIM keys, the DNS records to publish, and checking them.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="the From domain, e.g. example.com")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


def _records(setup: Setup, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in setup.records]))
        return
    console.print(f"Publish these records for [bold]{setup.domain.name}[/]:")
    for r in setup.records:
        # As a zone file line: copied as it is, nothing wrapped or shortened; a TXT value over
        # 255 characters (an RSA key) as several strings, which receivers join.
        value = r.value
        if r.type == "TXT":
            value = " ".join(f'"{r.value[i : i + 255]}"' for i in range(0, len(r.value), 255))
        typer.echo(f"{r.name}. IN {r.type} {value}")
        console.print(f"  [dim]; {r.why}[/]", highlight=False)
    console.print(
        f"Then: steadymail domain check {setup.domain.name}  (keys sign once found published)"
    )


@domain_app.command("add")
def add(name: Name, as_json: AsJson = False) -> None:
    """Add a sending domain with new RSA-2048 and Ed25519 keys; print the records to publish."""
    ctx = make_ctx()
    _records(domains.add(ctx.engine, ctx.clock, ctx.settings, name), as_json)


@domain_app.command("records")
def records(name: Name, as_json: AsJson = False) -> None:
    """Print the records the domain should publish now."""
    ctx = make_ctx()
    _records(domains.records(ctx.engine, ctx.settings, name), as_json)


@domain_app.command("rotate")
def rotate(name: Name, as_json: AsJson = False) -> None:
    """New keys beside the active ones: publish them, then check; the old ones retire."""
    ctx = make_ctx()
    _records(domains.rotate(ctx.engine, ctx.clock, ctx.settings, name), as_json)


def _show_check(result: CheckResult, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "domain": result.domain.name,
                    "verified": result.verified,
                    "findings": [
                        {"record": f.record, "verdict": f.verdict.value, "detail": f.detail}
                        for f in result.findings
                    ],
                    "activated": result.activated,
                    "retired": result.retired,
                }
            )
        )
        return
    table = Table("record", "verdict", "detail", title=f"{result.domain.name}")
    colour = {"ok": "green", "warning": "yellow", "missing": "red", "wrong": "red"}
    for f in result.findings:
        v = f.verdict.value
        table.add_row(f.record, f"[{colour[v]}]{v}[/]", f.detail)
    console.print(table)
    for selector in result.activated:
        console.print(f"DKIM key {selector} found published: it signs from now on")
    for selector in result.retired:
        console.print(f"DKIM key {selector} is retired: its record may be removed")
    console.print("verified" if result.verified else "[red]not verified[/]: fix what is above")


@domain_app.command("check")
def check(name: Name, as_json: AsJson = False) -> None:
    """Look the domain's records up and say, record by record, what is missing or wrong."""
    ctx = make_ctx()
    result = domains.check(ctx.engine, ctx.clock, ctx.settings, name)
    _show_check(result, as_json)
    if not result.verified:
        raise typer.Exit(1)


@domain_app.command("list")
def list_domains(as_json: AsJson = False) -> None:
    """Every sending domain, verified or not, with its keys."""
    ctx = make_ctx()
    rows = domains.all_domains(ctx.engine)
    if as_json:
        typer.echo(json.dumps([asdict(d) for d in rows]))
        return
    if not rows:
        console.print("no sending domains: steadymail domain add example.com")
        return
    table = Table("domain", "return path", "verified", "keys")
    for d in rows:
        keys = ", ".join(f"{k.selector} ({k.state})" for k in d.keys)
        verified = local_time(d.verified_at) if d.verified_at else "no"
        table.add_row(d.name, d.return_path_domain, verified, keys)
    console.print(table)
