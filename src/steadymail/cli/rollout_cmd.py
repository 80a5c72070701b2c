"""`steadymail control`, `steadymail rollout …` (through the control plane's API) and
`steadymail flags …` (one region, directly)."""

import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from pydantic import SecretStr
from rich.table import Table

from steadymail.cli.context import console, err_console, make_ctx, setup_logging
from steadymail.cli.numbers import loads_finite
from steadymail.config import load_settings
from steadymail.errors import SteadymailError
from steadymail.secretfile import read_or_create
from steadymail.services import flag_admin

rollout_app = typer.Typer(help="Roll a flag out region by region (via the control plane).")
flags_app = typer.Typer(help="This region's flags.", invoke_without_command=True)


def control_cmd(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the control plane: region registry, rollout driver, its API. Without
    control_api_key, the key in <data_dir>/control-api-key (generated there, 0600, if new)."""
    import uvicorn

    from steadymail.control.app import create_control_app

    setup_logging()
    s = load_settings()
    if s.control_api_key is None:
        path = s.data_dir / "control-api-key"
        s.control_api_key = SecretStr(read_or_create(path, lambda: secrets.token_urlsafe(32)))
        err_console.print(f"control plane API key in {path}", highlight=False)
    uvicorn.run(
        create_control_app(s),
        host=host or s.control_host,
        port=port or s.control_port,
        log_level="warning",
    )


def _parse_value(text: str) -> Any:
    """JSON when it parses (``{"every": 20}``, ``null``, ``3``), else the plain string."""
    try:
        return loads_finite(text)
    except json.JSONDecodeError:
        return text


def _control(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    s = load_settings()
    headers = {}
    key_file = s.data_dir / "control-api-key"  # written by `up --regions` and `control`
    if s.control_api_key is not None:
        headers["Authorization"] = f"Bearer {s.control_api_key.get_secret_value()}"
    elif key_file.exists():
        headers["Authorization"] = f"Bearer {key_file.read_text().strip()}"
    try:
        r = httpx.request(method, s.control_url + path, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as e:
        raise SteadymailError(f"control plane at {s.control_url} unreachable: {e}") from e
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise SteadymailError(str(detail))
    return r.json()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _show(r: dict[str, Any]) -> None:
    waves = " -> ".join("+".join(w) for w in r["waves"])
    console.print(
        f"rollout {r['id']}: {r['flag']}={r['value']!r}  [bold]{r['state']}[/] "
        f"({r['phase']}, wave {r['wave'] + 1}/{len(r['waves'])})  plan {waves}",
        highlight=False,
    )
    if r.get("decision"):
        console.print(f"  {r['decision']}", highlight=False)
    for e in r.get("events", []):
        where = f" {e['region']}" if e["region"] else ""
        console.print(
            f"  {_when(e['at'])} {e['kind']}{where} [{e['actor']}] {e['detail']}", highlight=False
        )


@rollout_app.command("start")
def rollout_start(
    flag: str,
    value: str,
    plan: Annotated[str | None, typer.Option(help="waves, e.g. R3,R1,R2 (R1+R2: together)")] = None,
    bake: Annotated[str | None, typer.Option(help="per wave, e.g. 10m")] = None,
    guard: Annotated[str | None, typer.Option(help="after the last wave, e.g. 30m")] = None,
    by: Annotated[str, typer.Option(help="who asks")] = "cli",
) -> None:
    """Start rolling FLAG=VALUE out; the risk policy is checked first."""
    body = {"flag": flag, "value": _parse_value(value), "plan": plan, "bake": bake}
    body.update({"guard": guard, "by": by})
    _show(_control("POST", "/v1/rollouts", body))


@rollout_app.command("status")
def rollout_status(rollout_id: Annotated[int | None, typer.Argument()] = None) -> None:
    """One rollout with its audit log, or the latest ones."""
    if rollout_id is not None:
        _show(_control("GET", f"/v1/rollouts/{rollout_id}"))
        return
    for r in _control("GET", "/v1/rollouts"):
        _show(r)


@rollout_app.command("pause")
def rollout_pause(rollout_id: int, by: str = "cli") -> None:
    _show(_control("POST", f"/v1/rollouts/{rollout_id}/pause", {"by": by}))


@rollout_app.command("resume")
def rollout_resume(rollout_id: int, by: str = "cli") -> None:
    _show(_control("POST", f"/v1/rollouts/{rollout_id}/resume", {"by": by}))


@rollout_app.command("rollback")
def rollout_rollback(rollout_id: int, by: str = "cli") -> None:
    """Restore the previous value in every region that has the new one."""
    _show(_control("POST", f"/v1/rollouts/{rollout_id}/rollback", {"by": by}))


@rollout_app.command("revert")
def rollout_revert(
    flag: str,
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
    by: Annotated[str, typer.Option(help="who asks")] = "cli",
) -> None:
    """Every region back to its previous value of FLAG, now, in parallel: freeze or not, no
    bake. A rollout of FLAG still in progress is rolled back instead."""
    _show(_control("POST", f"/v1/flags/{flag}/revert", {"by": by, "reason": reason}))


@rollout_app.command("regions")
def rollout_regions() -> None:
    """The regions the control plane knows: reachable, flags, firing alerts."""
    table = Table("region", "reachable", "flags", "firing alerts")
    for r in _control("GET", "/v1/regions"):
        table.add_row(
            r["region"],
            "yes" if r["reachable"] else f"no: {r.get('error', '')}",
            json.dumps(r.get("flags", {})),
            "; ".join(a["summary"] for a in r.get("firing_alerts", [])),
        )
    console.print(table)


@flags_app.callback()
def flags_list(ctx: typer.Context) -> None:
    """Flags set in this region (and the ones it knows)."""
    if ctx.invoked_subcommand is not None:
        return
    c = make_ctx()
    listing = flag_admin.listing(c.engine, c.settings.region)
    table = Table("flag", "value", "what")
    for name, description in listing["known"].items():
        table.add_row(name, json.dumps(listing["flags"].get(name)), description)
    console.print(table)


@flags_app.command("set")
def flags_set(
    name: str,
    value: Annotated[str, typer.Argument(help="JSON (null unsets) or a plain string")],
    by: Annotated[str, typer.Option(help="who")] = "cli",
    reason: str = "",
) -> None:
    """Set a flag in this region only (a rollout does this region by region for you)."""
    c = make_ctx()
    out = flag_admin.set_flag(
        c.engine,
        c.clock,
        name,
        _parse_value(value),
        by,
        reason,
        c.settings.region,
        c.settings.resolved_heartbeat_interval(),
    )
    console.print(f"{name}: {out['previous']!r} -> {out['value']!r}", highlight=False)


@flags_app.command("history")
def flags_history(name: Annotated[str | None, typer.Argument()] = None) -> None:
    c = make_ctx()
    for h in flag_admin.history(c.engine, name):
        console.print(
            f"{_when(h.at)} {h.name}: {h.previous!r} -> {h.value!r} by {h.by}"
            + (f" ({h.reason})" if h.reason else ""),
            highlight=False,
        )
