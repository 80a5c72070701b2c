"""The suppression list over real HTTP and through the CLI, on SQLite and PostgreSQL: added by
hand and by a hard bounce (with its message), listed and searched, lifted only with the admin
scope and a reason (and logged), imported with bad rows reported by line, exported whole."""

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from steadymail.cli.suppressions_cmd import suppressions_app
from steadymail.services import campaigns, csv_import, templates
from steadymail.store import apikeys
from steadymail.store.schema import contacts
from tests.conftest import CLOCK, LiveApi, Recorder
from tests.helpers import cli_against, make_campaign, run_worker_until, send_state, worker_for


def client(api: LiveApi, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {key or api.key}"}, timeout=30
    )


def campaign_to(engine: Engine, settings: Any, list_name: str) -> int:
    templates.create_template(engine, CLOCK, f"t-{list_name}", "News", "", "hello")
    send_id = campaigns.create_campaign(
        engine, CLOCK, settings, name=list_name, list_name=list_name, template=f"t-{list_name}"
    )
    return campaigns.start(engine, CLOCK, settings, send_id).messages


def test_add_search_lift_and_the_log(live_api: LiveApi, engine: Engine) -> None:
    writer = apikeys.create_key(engine, "writer", {"read", "write"}, CLOCK.now())
    with client(live_api) as c:
        body = {
            "emails": ["Ann@Example.org", "bob@example.org"],
            "stream": "marketing",
            "by": "alice",
            "note": "asked by phone",
        }
        assert c.post("/v1/suppressions", json=body).json() == {"added": 2}
        assert c.post("/v1/suppressions", json=body).json() == {"added": 0}  # a repeat
        # One bad address refuses the whole request: nothing added.
        bad = {**body, "emails": ["cy@example.org", "not an address"]}
        r = c.post("/v1/suppressions", json=bad)
        assert r.status_code == 422 and "not an address" in r.json()["detail"]
        c.post(
            "/v1/suppressions",
            json={"emails": ["dee@example.net"], "stream": "transactional", "by": "bob"},
        ).raise_for_status()

        found = c.get("/v1/suppressions", params={"q": "@EXAMPLE.ORG"}).json()
        assert sorted(s["email"] for s in found) == ["ann@example.org", "bob@example.org"]
        assert {(s["stream"], s["reason"], s["message_id"]) for s in found} == {
            ("marketing", "manual", None)
        }
        only = c.get("/v1/suppressions", params={"stream": "transactional"}).json()
        assert [s["email"] for s in only] == ["dee@example.net"]
        assert c.get("/v1/suppressions", params={"stream": "nope"}).status_code == 422

        # Lifting needs the admin scope, and says who and why.
        with client(live_api, writer) as w:
            r = w.delete("/v1/suppressions/ann@example.org", params={"by": "x", "reason": "y"})
            assert r.status_code == 403
        assert (
            c.delete("/v1/suppressions/ann@example.org", params={"by": "carol"}).status_code == 422
        )
        r = c.delete(
            "/v1/suppressions/ANN@example.org", params={"by": "carol", "reason": "re-subscribed"}
        )
        assert r.status_code == 200 and [s["email"] for s in r.json()["removed"]] == [
            "ann@example.org"
        ]
        again = c.delete("/v1/suppressions/ann@example.org", params={"by": "c", "reason": "r"})
        assert again.status_code == 404

        log = c.get("/v1/suppressions/log", params={"email": "ann@example.org"}).json()
        assert [(e["action"], e["by"], e["detail"]) for e in log] == [
            ("removed", "carol", "re-subscribed"),
            ("added", "alice", "asked by phone"),
        ]
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/v1/suppressions", "/v1/suppressions/{email}", "/v1/suppressions/log"} <= set(
            paths
        )


def test_streams_decide_which_sends_skip_an_address_and_lifting_lets_it_back(
    live_api: LiveApi, engine: Engine, settings_for: Any, db_url: str
) -> None:
    settings = settings_for(db_url, 25)
    rows = "email\n" + "".join(f"p{i}@example.com\n" for i in range(4))
    csv_import.import_contacts(engine, CLOCK, rows.encode(), "people")
    with client(live_api) as c:
        for email, stream in [
            ("p0@example.com", "marketing"),
            ("p1@example.com", "transactional"),
            ("p2@example.com", "all"),
        ]:
            c.post(
                "/v1/suppressions", json={"emails": [email], "stream": stream, "by": "t"}
            ).raise_for_status()
        # A campaign skips marketing and all, not transactional-only.
        assert campaign_to(engine, settings, "people") == 2
        with engine.connect() as conn:
            status = dict(conn.execute(select(contacts.c.email, contacts.c.status)).all())
        assert status == {
            "p0@example.com": "manual",
            "p1@example.com": "active",
            "p2@example.com": "manual",
            "p3@example.com": "active",
        }
        c.delete(
            "/v1/suppressions/p0@example.com", params={"by": "t", "reason": "consent again"}
        ).raise_for_status()
        with engine.connect() as conn:
            back = conn.execute(
                select(contacts.c.status).where(contacts.c.email == "p0@example.com")
            ).scalar_one()
        assert back == "active"
    csv_import.import_contacts(engine, CLOCK, rows.encode(), "people2")
    assert campaign_to(engine, settings, "people2") == 3  # p0 is mailed again, p2 is not


def test_a_hard_bounce_is_listed_with_its_message(
    live_api: LiveApi,
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
) -> None:
    recorder, port = smtp_server
    recorder.rcpt_script = lambda rcpt, _n: (
        "550 5.1.1 no such user" if rcpt.startswith("user1@") else None
    )
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 3)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    with client(live_api) as c:
        [s] = c.get("/v1/suppressions", params={"reason": "hard_bounce"}).json()
    assert (s["email"], s["stream"]) == ("user1@example.com", "all")
    assert isinstance(s["message_id"], int)


def test_import_reports_bad_rows_by_line_and_export_round_trips(
    live_api: LiveApi, engine: Engine
) -> None:
    body = (
        "email,stream,reason\n"
        "a@example.com,,\n"
        "b@example.com,transactional,complaint\n"
        "broken\n"
        "c@example.com,weekly,\n"
        "d@example.com,marketing,unsubscribed\n"
        "a@example.com,,\n"
    )
    with client(live_api) as c:
        r = c.post(
            "/v1/suppressions/import",
            params={"by": "import-bot", "stream": "all"},
            content=body.encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        report = r.json()
        assert (report["added"], report["already"], report["rejected"]) == (3, 1, 2)
        assert [e["line"] for e in report["errors"]] == [4, 5]
        assert "stream 'weekly'" in report["errors"][1]["reason"]
        exported = c.get("/v1/suppressions/export")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {(x["email"], x["stream"], x["reason"]) for x in rows} == {
            ("a@example.com", "all", "manual"),
            ("b@example.com", "transactional", "complaint"),
            ("d@example.com", "marketing", "unsubscribed"),
        }
        # The export imports back as it is: nothing new.
        again = c.post(
            "/v1/suppressions/import", params={"by": "x"}, content=exported.content
        ).json()
        assert (again["added"], again["already"], again["rejected"]) == (0, 3, 0)


def test_the_commands(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli_against(monkeypatch, db_url, tmp_path / "cli", tmp_path)
    cli = typer.Typer()
    cli.add_typer(suppressions_app, name="suppressions")
    cli.command("noop")(lambda: None)
    run = CliRunner().invoke

    r = run(
        cli,
        [
            "suppressions",
            "add",
            "x@example.com",
            "y@example.com",
            "--stream",
            "marketing",
            "--by",
            "ops",
            "--note",
            "ticket 12",
        ],
    )
    assert r.exit_code == 0 and "2 suppressed in marketing" in r.output, r.output
    r = run(cli, ["suppressions", "search", "x@", "--json"])
    assert [s["email"] for s in json.loads(r.stdout)] == ["x@example.com"]
    f = tmp_path / "more.csv"
    f.write_text("email\nz@example.com\nnope\n")
    r = run(cli, ["suppressions", "import", str(f), "--by", "ops"])
    assert r.exit_code == 0 and "1" in r.output and "line 3" in r.output, r.output
    r = run(cli, ["suppressions", "remove", "y@example.com", "--reason", "mistake", "--by", "ops"])
    assert r.exit_code == 0 and "lifted y@example.com marketing" in r.output, r.output
    out = tmp_path / "all.csv"
    r = run(cli, ["suppressions", "export", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(row["email"] for row in csv.DictReader(out.open())) == [
        "x@example.com",
        "z@example.com",
    ]
    r = run(cli, ["suppressions", "log", "--email", "y@example.com"])
    assert "removed" in r.output and "mistake" in r.output
