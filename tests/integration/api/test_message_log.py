"""The message log over real HTTP and the CLI, on SQLite and PostgreSQL: a recipient's messages
found by any spelling of the address, each with its history (queued, each attempt with its SMTP
reply, a click through the real tracking endpoint), and pruned after the retention."""

import asyncio
import email
import email.policy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from selectolax.lexbor import LexborHTMLParser
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from steadymail.cli.messages_cmd import messages_app
from steadymail.store import message_log
from steadymail.store.schema import message_events
from tests.conftest import LiveApi, Recorder
from tests.helpers import (
    cli_against,
    make_campaign,
    run_worker_until,
    send_state,
    wait_until,
    worker_for,
)

HTML = '<p>Hi {{ first_name }}</p><a href="https://shop.example.com/sale">Sale</a>'


def client(api: LiveApi) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {api.key}"}, timeout=30
    )


def test_a_recipients_history_from_queued_to_click(
    live_api: LiveApi,
    engine: Engine,
    smtp_server: tuple[Recorder, int],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    recorder, _ = smtp_server
    # user1 is greylisted once (deferred, then sent); user2's mailbox does not exist.
    recorder.rcpt_script = lambda rcpt, n: (
        "451 4.7.1 greylisted, try later"
        if rcpt.startswith("user1@") and n == 1
        else "550 5.1.1 no such user"
        if rcpt.startswith("user2@")
        else None
    )
    send_id = make_campaign(engine, live_api.settings, 3, html=HTML, text="Hi")
    worker = worker_for(live_api.settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    raw = next(m.data for m in recorder.messages if m.rcpt == "user1@example.com")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [click_url] = [a.attributes.get("href") or "" for a in LexborHTMLParser(html).css("a")]
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0"}
    assert httpx.get(click_url, headers=browser).status_code == 302

    with client(live_api) as c:

        def clicked() -> list[dict[str, object]]:
            [m] = c.get("/v1/messages", params={"to": "User1@EXAMPLE.com"}).json()
            return m if any(e["kind"] == "clicked" for e in m["events"]) else None

        m = wait_until(clicked, 10, "the click in the log")  # the recorder flushes in batches
        assert (m["email"], m["state"], m["send_id"]) == ("user1@example.com", "sent", send_id)
        kinds = [e["kind"] for e in m["events"]]
        assert kinds == ["queued", "deferred", "sent", "clicked"], kinds
        deferred = m["events"][1]
        assert deferred["smtp_code"] == 451 and "greylisted" in deferred["detail"]
        assert m["events"][3]["detail"] == "https://shop.example.com/sale"
        assert [e["at"] for e in m["events"]] == sorted(e["at"] for e in m["events"])

        [bounced] = c.get("/v1/messages", params={"to": "user2@example.com"}).json()
        assert [e["kind"] for e in bounced["events"]] == ["queued", "bounced"]
        assert bounced["events"][1]["smtp_code"] == 550
        events = c.get(f"/v1/messages/{bounced['id']}/events").json()
        assert events == bounced["events"]
        assert c.get("/v1/messages", params={"to": "nobody@example.com"}).json() == []
        assert c.get("/v1/messages/999999/events").status_code == 404
        assert c.get("/v1/messages", params={"to": "no-at-sign"}).status_code == 422

    cli_against(monkeypatch, db_url, tmp_path / "cli", tmp_path)
    cli = typer.Typer()
    cli.add_typer(messages_app, name="messages")
    cli.command("noop")(lambda: None)
    r = CliRunner().invoke(cli, ["messages", "search", "--to", "user2@example.com"])
    assert r.exit_code == 0 and "bounced" in r.output and "no such user" in r.output, r.output
    r = CliRunner().invoke(cli, ["messages", "search", "--to", "user1@example.com", "--json"])
    assert [e["kind"] for e in json.loads(r.stdout)[0]["events"]][:3] == [
        "queued",
        "deferred",
        "sent",
    ]


def test_events_past_the_retention_are_pruned(
    engine: Engine, smtp_server: tuple[Recorder, int], settings_for: Any, db_url: str
) -> None:
    settings = settings_for(db_url, smtp_server[1])
    send_id = make_campaign(engine, settings, 30)
    with engine.begin() as conn:  # queued long ago, as far as the log knows
        conn.execute(update(message_events).values(at=1000.0))
        conn.execute(
            message_events.insert().values(message_id=1, send_id=send_id, at=5000.0, kind="sent")
        )
    # Two events per chunk, three chunks per call: the caller comes back for the rest.
    assert message_log.prune(engine, before=2000.0, chunk=2, chunks=3) == 6
    assert message_log.prune(engine, before=2000.0, chunk=100, chunks=3) == 24
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(message_events)).scalar_one()
    assert left == 1
