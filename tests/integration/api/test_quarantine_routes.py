"""Quarantine and requeue through the API (scopes, response models, errors) and the CLI."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from steadymail.api.app import create_app
from steadymail.cli.quarantine_cmd import quarantine_app, requeue_cmd
from steadymail.config import Settings
from steadymail.errors import Conflict
from steadymail.store import apikeys
from steadymail.store.schema import messages
from tests.conftest import Recorder
from tests.helpers import cli_against, make_campaign, run_worker_until, send_state, worker_for


def quarantined_send(engine: Engine, settings: Settings) -> tuple[int, int, int]:
    """A completed send whose message to user2 a real worker quarantined; (send, bad, good)."""
    send_id = make_campaign(engine, settings, 5)
    with engine.begin() as conn:
        ids = {
            r.email: int(r.id)
            for r in conn.execute(
                select(messages.c.id, messages.c.email).where(messages.c.send_id == send_id)
            )
        }
        conn.execute(
            update(messages)
            .where(messages.c.id == ids["user2@example.com"])
            .values(crashes=settings.quarantine_after)
        )
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    return send_id, ids["user2@example.com"], ids["user0@example.com"]


@pytest.fixture
def setup(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> tuple[Settings, int, int, int]:
    settings = settings_for(db_url, smtp_server[1])
    return (settings, *quarantined_send(engine, settings))


def test_the_routes(engine: Engine, setup: tuple[Settings, int, int, int]) -> None:
    settings, send_id, bad, good = setup
    app = create_app(settings, engine)
    client = TestClient(app)
    rw = {"Authorization": f"Bearer {apikeys.create_key(engine, 'rw', {'read', 'write'}, 0)}"}
    ro = {"Authorization": f"Bearer {apikeys.create_key(engine, 'ro', {'read'}, 0)}"}
    admin = {"Authorization": f"Bearer {apikeys.create_key(engine, 'op', {'admin'}, 0)}"}

    assert client.get("/v1/quarantine").status_code == 401
    r = client.get("/v1/quarantine", params={"send": send_id}, headers=ro)
    assert r.status_code == 200
    [item] = r.json()
    assert {k: item[k] for k in ("id", "send", "email", "crashes")} == {
        "id": bad,
        "send": send_id,
        "email": "user2@example.com",
        "crashes": 3,
    }
    assert "workers died" in item["last_error"] and item["quarantined_at"] > 0
    assert client.get("/v1/quarantine", headers=ro).json() == [item]
    assert client.get("/v1/quarantine", params={"send": 999}, headers=ro).status_code == 404

    release = "/v1/quarantine/release"
    # Releasing and requeueing are admin actions: a read or write key is refused (403).
    assert client.post(release, json={"messages": [bad]}, headers=ro).status_code == 403
    assert client.post(release, json={"messages": [bad]}, headers=rw).status_code == 403
    refused = client.post(release, json={"messages": [bad, good]}, headers=admin)
    assert refused.status_code == 409 and f"message {good} is sent" in refused.json()["detail"]
    both = client.post(release, json={"messages": [bad], "send": send_id}, headers=admin)
    assert both.status_code == 422
    assert client.post(release, json={"messages": [999999]}, headers=admin).status_code == 404
    ok = client.post(release, json={"send": send_id}, headers=admin)
    assert ok.status_code == 200 and ok.json() == {"released": 1, "messages": [bad]}
    assert client.get("/v1/quarantine", headers=ro).json() == []

    requeue = f"/v1/sends/{send_id}/requeue"
    assert client.post(requeue, headers=rw).status_code == 403
    r = client.post(requeue, headers=admin)
    assert r.status_code == 200 and r.json() == {
        "send": send_id,
        "dead_owner_leases": 0,
        "expired_leases": 0,
        "live_leases": 0,
        "deferred": 0,
        "batches_due": 0,
    }
    assert client.post("/v1/sends/999/requeue", headers=admin).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/quarantine", "/v1/quarantine/release", "/v1/sends/{send_id}/requeue"} <= set(paths)


def test_the_commands(
    engine: Engine,
    db_url: str,
    setup: tuple[Settings, int, int, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _settings, send_id, bad, good = setup
    cli_against(monkeypatch, db_url, tmp_path / "cli", tmp_path)
    cli = typer.Typer()
    cli.add_typer(quarantine_app, name="quarantine")
    cli.command("requeue")(requeue_cmd)
    runner = CliRunner()

    r = runner.invoke(cli, ["quarantine", "list", "--send", str(send_id), "--json"])
    assert r.exit_code == 0, r.output
    [item] = json.loads(r.stdout)
    assert (item["id"], item["send_id"], item["email"]) == (bad, send_id, "user2@example.com")
    r = runner.invoke(cli, ["quarantine", "list"])
    assert r.exit_code == 0 and "user2@example.com" in r.stdout

    r = runner.invoke(cli, ["quarantine", "release", str(good)])
    assert isinstance(r.exception, Conflict) and f"message {good} is sent" in str(r.exception)
    r = runner.invoke(cli, ["quarantine", "release", "--send", str(send_id)])
    assert r.exit_code == 2 and "--all" in r.output
    r = runner.invoke(cli, ["quarantine", "release", str(bad), "--send", str(send_id), "--all"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["quarantine", "release", str(bad)])
    assert r.exit_code == 0 and f"released 1 message(s): {bad}" in r.stdout
    assert send_state(engine, send_id) == "running"
    r = runner.invoke(cli, ["quarantine", "release", "--send", str(send_id), "--all"])
    assert r.exit_code == 0 and "no quarantined messages" in r.stdout
    r = runner.invoke(cli, ["quarantine", "list", "--json"])
    assert json.loads(r.stdout) == []

    r = runner.invoke(cli, ["requeue", str(send_id)])
    assert r.exit_code == 0, r.output
    assert f"send {send_id}: 0 lease(s) of dead workers expired now" in r.stdout
