"""API security: Bearer parsing, 401 vs 403, the admin scope, key revocation, the admin and
public listeners apart, the keys `up` keeps."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from steadymail.api.app import create_app, create_public_app
from steadymail.api.serve import Listeners
from steadymail.cli.devkey import dev_key
from steadymail.cli.main import app as cli
from steadymail.config import Settings
from steadymail.errors import NotFound
from steadymail.store import apikeys
from steadymail.store.schema import api_keys, instances
from steadymail.tracking.tokens import Kind, TokenData
from tests.conftest import CLOCK, LiveApi, Recorder

ALL_BUT_ADMIN = {"read", "write", "send"}
# (method, path, body, status an admin key gets: the route ran, past authentication)
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("PUT", "/v1/flags/tracking.version", {"value": "v2", "by": "t"}, 200),
    ("PUT", "/v1/flags/fault.worker_exit", {"value": {"every": 20}, "by": "t"}, 200),
    ("PUT", "/v1/flags/fault.tracking_crash", {"value": None, "by": "t"}, 200),
    ("POST", "/v1/quarantine/release", {"messages": [999999]}, 404),
    ("POST", "/v1/sends/999/requeue", None, 404),
]


@pytest.fixture
def settings(db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any) -> Settings:
    s: Settings = settings_for(db_url, smtp_server[1])
    return s


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_authorization_must_be_bearer_and_a_valid_key(engine: Engine, settings: Settings) -> None:
    client = TestClient(create_app(settings, engine))
    key = apikeys.create_key(engine, "reader", {"read"}, CLOCK.now())
    refused = [
        None,
        f"Basic {key}",
        key,  # a bare key
        f"Token {key}",
        f"Bearer {key} extra",
        "Bearer ",
        f"Bearer {key}x",
        "Bearer sm_nope_nope",
        "Bearer not-a-key",
    ]
    for header in refused:
        r = client.get("/v1/sends", headers={"Authorization": header} if header else {})
        assert r.status_code == 401, header
        assert r.headers["www-authenticate"].startswith("Bearer"), header
        assert r.json()["error"] == "Unauthorized" and r.json()["detail"]
    for scheme in ("Bearer", "bearer", "BEARER"):
        r = client.get("/v1/sends", headers={"Authorization": f"{scheme} {key}"})
        assert r.status_code == 200, scheme


def test_a_valid_key_without_the_scope_gets_403(engine: Engine, settings: Settings) -> None:
    client = TestClient(create_app(settings, engine))
    sender = bearer(apikeys.create_key(engine, "app", {"send"}, CLOCK.now()))
    r = client.get("/v1/sends", headers=sender)
    assert r.status_code == 403 and "www-authenticate" not in r.headers
    assert r.json() == {"error": "Forbidden", "detail": "this API key lacks the 'read' scope"}
    r = client.post("/v1/templates", json={"name": "t", "subject": "s"}, headers=sender)
    assert r.status_code == 403 and "'write'" in r.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "ok"), ADMIN_ROUTES)
def test_admin_routes_need_the_admin_scope(
    engine: Engine,
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    ok: int,
) -> None:
    client = TestClient(create_app(settings, engine))
    everything_else = bearer(apikeys.create_key(engine, "rw", ALL_BUT_ADMIN, CLOCK.now()))
    admin = bearer(apikeys.create_key(engine, "op", {"admin"}, CLOCK.now()))
    assert client.request(method, path, json=body).status_code == 401
    r = client.request(method, path, json=body, headers=everything_else)
    assert r.status_code == 403 and "'admin'" in r.json()["detail"]
    assert client.request(method, path, json=body, headers=admin).status_code == ok


def test_apikey_list_and_revoke(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEADYMAIL_DATABASE_URL", db_url)
    monkeypatch.setenv("STEADYMAIL_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("STEADYMAIL_CONFIG", str(tmp_path / "none.toml"))
    runner = CliRunner()
    made = runner.invoke(cli, ["apikey", "create", "ops", "--scopes", "read,admin"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    other = apikeys.create_key(engine, "other", {"read"}, CLOCK.now())

    listed = runner.invoke(cli, ["apikey", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["revoked_at"]) for r in rows] == [
        ("ops", ["admin", "read"], None),
        ("other", ["read"], None),
    ]
    assert key.startswith(f"sm_{rows[0]['prefix']}_")
    with engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(api_keys.c.key_hash))]
    table = runner.invoke(cli, ["apikey", "list"]).stdout
    for shown in (listed.stdout, table):
        assert key.split("_", 2)[2] not in shown and other.split("_", 2)[2] not in shown
        assert not any(h in shown for h in hashes)
    assert rows[0]["prefix"] in table

    assert apikeys.authenticate(engine, key) == {"read", "admin"}
    r = runner.invoke(cli, ["apikey", "revoke", rows[0]["prefix"]])
    assert r.exit_code == 0 and "revoked" in r.stdout
    r = runner.invoke(cli, ["apikey", "revoke", str(rows[1]["id"])])
    assert r.exit_code == 0 and "other" in r.stdout
    assert runner.invoke(cli, ["apikey", "revoke", rows[0]["prefix"]]).exit_code == 0  # again
    assert isinstance(runner.invoke(cli, ["apikey", "revoke", "ffffffffffff"]).exception, NotFound)
    rows = json.loads(runner.invoke(cli, ["apikey", "list", "--json"]).stdout)
    assert all(r["revoked_at"] for r in rows)


def test_a_revoked_key_gets_401(engine: Engine, settings: Settings) -> None:
    client = TestClient(create_app(settings, engine))
    key = apikeys.create_key(engine, "gone", {"read"}, CLOCK.now())
    assert client.get("/v1/sends", headers=bearer(key)).status_code == 200
    apikeys.revoke(engine, key.split("_")[1], CLOCK.now())
    r = client.get("/v1/sends", headers=bearer(key))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_the_admin_and_public_apps_serve_only_their_own_routes(
    engine: Engine, settings: Settings
) -> None:
    admin_app = create_app(settings, engine)
    admin = TestClient(admin_app, follow_redirects=False)
    public = TestClient(create_public_app(settings, engine), follow_redirects=False)
    signer = admin_app.state.steadymail.signer
    click = signer.sign(TokenData(Kind.CLICK, 1, 1, 0, "https://shop.example.com/"))
    unsub = signer.sign(TokenData(Kind.UNSUBSCRIBE, 1, 1))
    key = bearer(apikeys.create_key(engine, "all", set(apikeys.SCOPES), CLOCK.now()))

    r = public.get(f"/t/c/{click}")
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example.com/"
    assert public.get(f"/u/{unsub}").status_code == 200
    assert public.get("/healthz").json() == {"status": "ok"}
    for path in ("/v1/sends", "/v1/flags", "/docs", "/openapi.json", "/metrics", "/readyz"):
        assert public.get(path, headers=key).status_code == 404, path
    assert public.put(
        "/v1/flags/tracking.version", json={"value": "v2", "by": "x"}
    ).status_code in (
        404,
        405,
    )

    for path in (f"/t/c/{click}", f"/t/o/{click}", f"/u/{unsub}"):
        assert admin.get(path).status_code == 404, path
    assert admin.post(f"/u/{unsub}").status_code in (404, 405)
    assert admin.get("/v1/sends", headers=key).status_code == 200
    for path in ("/docs", "/openapi.json", "/metrics", "/healthz", "/readyz"):
        assert admin.get(path).status_code == 200, path
    schema = admin.get("/openapi.json").json()
    assert not any(p.startswith(("/t/", "/u/")) for p in schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_one_api_process_registers_once_and_shares_its_state(
    live_api: LiveApi, engine: Engine
) -> None:
    admin_app, public_app = (s.config.app for s in live_api.listeners.servers)
    assert admin_app.state.steadymail is public_app.state.steadymail is live_api.state
    assert httpx.get(live_api.url + "/healthz").json()["status"] == "ok"
    assert httpx.get(live_api.public_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(live_api.public_url + "/v1/sends").status_code == 404
    assert httpx.get(live_api.url + "/t/o/x").status_code == 404

    def api_instances() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(select(instances).where(instances.c.service == "api")))

    [running] = api_instances()
    assert running.stopped_at is None
    live_api.stop()
    [stopped] = api_instances()
    assert stopped.instance_id == running.instance_id and stopped.stopped_at is not None


def test_listeners_can_run_one_at_a_time(engine: Engine, settings: Settings) -> None:
    assert [s.config.port for s in Listeners(settings, engine, which="admin").servers] == [
        settings.api_port
    ]
    assert [s.config.port for s in Listeners(settings, engine, which="public").servers] == [
        settings.public_port
    ]


def test_up_keeps_a_key_of_every_scope_in_a_private_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "data" / "dev-api-key"
    key = dev_key(engine, path, CLOCK)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert apikeys.authenticate(engine, key) == set(apikeys.SCOPES)
    assert dev_key(engine, path, CLOCK) == key  # kept across runs

    # A key from before the admin scope existed would leave rollouts 403: replaced.
    old = apikeys.create_key(engine, "dev", ALL_BUT_ADMIN, CLOCK.now())
    path.write_text(old + "\n")
    new = dev_key(engine, path, CLOCK)
    assert new != old and path.read_text().strip() == new
    assert (path.stat().st_mode & 0o777) == 0o600
    apikeys.revoke(engine, new.split("_")[1], CLOCK.now())
    assert dev_key(engine, path, CLOCK) not in (old, new)
    assert sorted(p.name for p in path.parent.iterdir()) == ["dev-api-key"]


def test_one_listener_ending_ends_the_process(live_api: LiveApi, engine: Engine) -> None:
    public = live_api.listeners.servers[1]
    assert public.config.port == live_api.settings.public_port
    public.should_exit = True  # as if the public listener alone had stopped
    live_api.thread.join(10)
    assert not live_api.thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(live_api.url + "/healthz", timeout=2)
    with engine.connect() as conn:
        [stopped] = conn.execute(
            select(instances.c.stopped_at).where(instances.c.service == "api")
        ).scalars()
    assert stopped is not None
