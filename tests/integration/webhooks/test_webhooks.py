"""Event webhooks end to end, on SQLite and PostgreSQL: a real worker sends a campaign (one
address bounces), the real dispatcher delivers every event of the message log to a real HTTP
receiver, signed per the Standard Webhooks specification, in order per message; a receiver
that fails gets the same batch again (same webhook-id) until it takes it, nothing lost; one that
fails for long is disabled and alerted; events replay from a time; a URL on an internal
address is refused."""

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from steadymail.cli.webhooks_cmd import webhooks_app
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.domain.webhooks import verify
from steadymail.errors import ValidationError
from steadymail.monitor.webhook_health import WebhookWatcher
from steadymail.services import webhooks
from steadymail.store import tracking
from steadymail.store import webhooks as store
from steadymail.store.schema import message_events, tracking_events, webhook_deliveries
from steadymail.webhooks.dispatcher import Dispatcher
from tests.conftest import LiveApi, Recorder
from tests.helpers import (
    cli_against,
    make_campaign,
    run_worker_until,
    send_state,
    wait_until_async,
    worker_for,
)

CLOCK = SystemClock()


@dataclass
class Receiver:
    """A real HTTP endpoint: records each request; `status(n)` answers the n-th (from 1)."""

    status: Callable[[int], int] = lambda _n: 204
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    answer_delay: float = 0.0  # seconds between taking a request and answering it

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every event of every request it accepted, each request's signature checked."""
        out = []
        with self.lock:
            taken = [(h, b) for h, b in self.requests if h["x-answered"] == "2xx"]
        for headers, body in taken:
            assert verify(secret, headers, body, CLOCK.now()), headers
            out += json.loads(body)["data"]["events"]
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                n = len(rec.requests) + 1
                code = rec.status(n)
                headers["x-answered"] = "2xx" if code < 300 else str(code)
                rec.requests.append((headers, body))
            time.sleep(rec.answer_delay)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()


def campaign(engine: Engine, settings: Settings, recorder: Recorder, n: int = 5) -> int:
    recorder.rcpt_script = lambda rcpt, _n: (
        "550 5.1.1 no such user" if rcpt.startswith("user1@") else None
    )
    send_id = make_campaign(engine, settings, n)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    return send_id


def dispatch_until(
    engine: Engine, settings: Settings, cond: Callable[[], bool], timeout: float = 30
) -> Dispatcher:
    dispatcher = Dispatcher(engine, settings, CLOCK)

    async def go() -> None:
        task = asyncio.create_task(dispatcher.run())
        try:
            await wait_until_async(cond, timeout, "the dispatcher's work")
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(go())
    return dispatcher


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def settings(db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any) -> Settings:
    s: Settings = settings_for(
        db_url,
        smtp_server[1],
        webhook_allow_private=True,
        webhook_poll=0.05,
        webhook_batch_size=4,
        webhook_retry_base=0.05,
        webhook_retry_max=0.2,
    )
    return s


def test_every_event_arrives_signed_and_in_order_per_message(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    every = ["queued", "sent", "deferred", "bounced", "failed", "complained", "opened", "clicked"]
    added = webhooks.add(engine, CLOCK, settings, receiver.url, every, description="ours")
    campaign(engine, settings, smtp_server[0])
    total = count(engine, message_events)  # 5 queued, 4 sent, 1 bounced
    with engine.connect() as conn:
        log = [
            tuple(r)
            for r in conn.execute(select(message_events.c.message_id, message_events.c.kind))
        ]
    assert total == 10, log
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= total)
    events = receiver.events(added.secret)
    assert len(events) == total and len({e["id"] for e in events}) == total
    by_message: dict[int, list[str]] = {}
    for e in events:
        by_message.setdefault(e["data"]["message_id"], []).append(e["type"])
    assert sorted(by_message.values()) == [["queued", "bounced"]] + [["queued", "sent"]] * 4
    bounced = next(e for e in events if e["type"] == "bounced")
    assert bounced["data"]["recipient"] == "user1@example.com"
    assert bounced["data"]["smtp_code"] == 550 and "no such user" in bounced["data"]["detail"]
    # Batches of at most 4 events, one webhook-id each.
    assert all(len(json.loads(b)["data"]["events"]) <= 4 for _, b in receiver.requests)
    assert webhooks.get(engine, added.webhook.id)[1]["delivered"] == total


def test_a_failing_receiver_gets_the_same_batch_again_and_loses_nothing(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    receiver.status = lambda n: 503 if n <= 5 else 200  # down for the first five requests
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["queued", "sent", "bounced"])
    campaign(engine, settings, smtp_server[0])
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 10)
    ids = [h["webhook-id"] for h, _ in receiver.requests]
    assert len(set(ids[:6])) == 1, ids  # five refusals and the success: one batch, one id
    assert len(receiver.events(added.secret)) == 10
    hook, counts = webhooks.get(engine, added.webhook.id)
    assert counts == {"pending": 0, "batched": 0, "delivered": 10, "dead": 0}
    assert hook.failing_since is None and hook.last_success_at is not None


def test_a_stop_while_the_receiver_answers_records_the_batch_as_delivered(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    # The dispatcher is stopped the moment the receiver has the events, before it answers: the
    # batch in hand still ends delivered (not left to be sent again after its lease).
    receiver.answer_delay = 0.5
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["queued"])
    campaign(engine, settings, smtp_server[0])
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 1)
    _, counts = webhooks.get(engine, added.webhook.id)
    assert counts["batched"] == 0
    assert counts["delivered"] == len(receiver.events(added.secret))


def test_an_endpoint_failing_for_long_is_disabled_alerted_and_resumes_when_enabled(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    receiver: Receiver,
) -> None:
    settings = settings_for(
        db_url,
        smtp_server[1],
        webhook_allow_private=True,
        webhook_poll=0.05,
        webhook_retry_base=0.05,
        webhook_retry_max=0.1,
        webhook_disable_after=0.5,
        webhook_alert_after=0.2,
    )
    down = {"now": True}
    receiver.status = lambda _n: 500 if down["now"] else 200
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["sent"])
    campaign(engine, settings, smtp_server[0], n=3)
    watcher = WebhookWatcher(engine, settings)
    dispatch_until(engine, settings, lambda: not webhooks.get(engine, added.webhook.id)[0].enabled)
    hook = webhooks.get(engine, added.webhook.id)[0]
    assert "every attempt failed" in hook.disabled_reason and "HTTP 500" in hook.last_error
    signals = watcher.tick(CLOCK.now())
    assert [(s.name, s.severity) for s in signals if not s.resolve] == [
        ("webhook_disabled", "critical")
    ]
    # Nothing was lost while it was down: the outbox still holds every event.
    assert webhooks.get(engine, added.webhook.id)[1]["delivered"] == 0
    down["now"] = False
    webhooks.set_enabled(engine, added.webhook.id, True)
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 2)
    assert sorted(e["data"]["recipient"] for e in receiver.events(added.secret)) == [
        "user0@example.com",
        "user2@example.com",
    ]
    assert [s.resolve for s in watcher.tick(CLOCK.now())] == [True]


def test_events_replay_from_a_time(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    t0 = CLOCK.now()
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["sent"])
    campaign(engine, settings, smtp_server[0])
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 4)
    assert webhooks.replay(engine, CLOCK, added.webhook.id, t0) == 4
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 8)
    ids = [e["id"] for e in receiver.events(added.secret)]
    assert len(ids) == 8 and len(set(ids)) == 4  # the same events, each twice
    with pytest.raises(ValidationError, match="future"):
        webhooks.replay(engine, CLOCK, added.webhook.id, CLOCK.now() + 60)


def test_an_event_committed_late_with_an_earlier_id_is_not_skipped(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    """A transaction that took its id before another's commits after it: the cursor passed
    that id while it was missing, and reads it again when it appears."""
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["sent"])
    send_id = make_campaign(engine, settings, 3)
    now = CLOCK.now()
    with engine.begin() as conn:
        top = int(conn.execute(select(func.max(message_events.c.id))).scalar_one())
        conn.execute(
            insert(message_events),
            [{"id": top + 2, "message_id": 1, "send_id": send_id, "at": now, "kind": "sent"}],
        )
    assert store.fan_out(engine, now) == 1
    with engine.begin() as conn:
        conn.execute(
            insert(message_events),
            [{"id": top + 1, "message_id": 2, "send_id": send_id, "at": now, "kind": "sent"}],
        )
    assert store.fan_out(engine, now + 1) == 1
    with engine.connect() as conn:
        got = sorted(r.event_id for r in conn.execute(select(webhook_deliveries.c.event_id)))
    assert got == [f"me_{top + 1}", f"me_{top + 2}"]
    assert added.webhook.id == 1 and count(engine, tracking_events) == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.0.0.8/hook", "private"),
        ("ftp://example.com/x", "http:// or https://"),
        ("https://user:pw@example.com/x", "credentials"),
    ],
)
def test_urls_on_internal_addresses_are_refused(
    engine: Engine, db_url: str, settings_for: Any, url: str, why: str
) -> None:
    settings = settings_for(db_url, 25)
    with pytest.raises(ValidationError, match=why):
        webhooks.add(engine, CLOCK, settings, url, ["sent"])


def test_the_api_refuses_internal_urls_and_unknown_events(
    live_api: LiveApi, receiver: Receiver
) -> None:
    auth = {"Authorization": f"Bearer {live_api.key}"}
    with httpx.Client(base_url=live_api.url, headers=auth, timeout=30) as c:
        r = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["sent"]})
        assert r.status_code == 422 and "loopback" in r.json()["detail"]
        r = c.post("/v1/webhooks", json={"url": "https://example.com/hooks", "events": ["nope"]})
        assert r.status_code == 422 and "events are some of" in r.json()["detail"]
        assert c.get("/v1/webhooks").json() == []
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/v1/webhooks", "/v1/webhooks/{webhook_id}/replay"} <= set(paths)


def test_clicks_opens_and_unsubscribes_are_events_too(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    added = webhooks.add(
        engine, CLOCK, settings, receiver.url, ["opened", "clicked", "unsubscribed"]
    )
    send_id = campaign(engine, settings, smtp_server[0], n=3)
    now = CLOCK.now()
    tracking.insert_events(
        engine,
        [
            tracking.TrackingEvent("open", send_id, 1, now, "GET", machine=True),
            tracking.TrackingEvent(
                "click", send_id, 1, now, "GET", link=1, url="https://x.example/a"
            ),
            tracking.TrackingEvent("unsubscribe", send_id, 3, now, "POST"),
        ],
    )
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 3)
    got = {(e["type"], e["data"]["recipient"]) for e in receiver.events(added.secret)}
    assert got == {
        ("opened", "user0@example.com"),
        ("clicked", "user0@example.com"),
        ("unsubscribed", "user2@example.com"),
    }
    click = next(e for e in receiver.events(added.secret) if e["type"] == "clicked")
    assert click["data"]["url"] == "https://x.example/a" and click["data"]["machine"] is False


def test_the_commands(
    engine: Engine,
    db_url: str,
    settings: Settings,
    smtp_server: tuple[Recorder, int],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cli_against(monkeypatch, db_url, settings.data_dir, tmp_path)
    monkeypatch.setenv("STEADYMAIL_WEBHOOK_ALLOW_PRIVATE", "true")
    cli = typer.Typer()
    cli.add_typer(webhooks_app, name="webhooks")
    cli.command("noop")(lambda: None)
    run = CliRunner().invoke
    r = run(cli, ["webhooks", "add", receiver.url, "--events", "sent,bounced"])
    assert r.exit_code == 0 and "signing secret (shown once): whsec_" in r.output, r.output
    secret = r.output.split("(shown once): ")[1].split()[0]
    r = run(cli, ["webhooks", "add", receiver.url, "--events", "sent,nope"])
    assert isinstance(r.exception, ValidationError) and "events are some of" in str(r.exception)
    r = run(cli, ["webhooks", "disable", "1", "--reason", "maintenance"])
    assert r.exit_code == 0, r.output
    assert run(cli, ["webhooks", "list"]).exit_code == 0
    assert "disabled: maintenance" in run(cli, ["webhooks", "show", "1"]).output
    t0 = CLOCK.now()
    campaign(engine, settings, smtp_server[0], n=3)
    assert run(cli, ["webhooks", "enable", "1"]).exit_code == 0
    dispatch_until(engine, settings, lambda: len(receiver.events(secret)) >= 3)
    r = run(cli, ["webhooks", "show", "1"])
    assert "delivered 3" in r.output, r.output
    since = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S")
    r = run(cli, ["webhooks", "replay", "1", "--since", since, "--tz", "UTC"])
    assert r.exit_code == 0 and "3 events queued again" in r.output, r.output
    assert run(cli, ["webhooks", "remove", "1"]).exit_code == 0
    assert webhooks.listing(engine) == []


def test_an_attempt_overtaken_after_its_lease_writes_nothing(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    """A dispatcher whose request outlived its lease (twice the timeout) is overtaken: another
    takes the batch; the first's late outcome changes nothing, the second's counts."""
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["queued"])
    make_campaign(engine, settings, 2)
    now = CLOCK.now()
    assert store.fan_out(engine, now) == 2
    first = store.take_batch(engine, added.webhook.id, 10, now, now + 20)
    assert (
        first is not None and store.take_batch(engine, added.webhook.id, 10, now, now + 20) is None
    )
    second = store.take_batch(engine, added.webhook.id, 10, now + 21, now + 41)
    assert second is not None and second.id == first.id  # the same batch, a new attempt
    assert store.failed(engine, first, "late", now + 22, now + 30, 3 * 86400, 6 * 3600) is None
    assert not store.delivered(engine, first, now + 22)
    assert store.delivered(engine, second, now + 23)
    assert webhooks.get(engine, added.webhook.id)[1]["delivered"] == 2
    assert webhooks.get(engine, added.webhook.id)[0].last_error == ""


def test_a_long_transactions_events_arriving_late_are_all_fanned_out_once(
    engine: Engine, settings: Settings, receiver: Receiver
) -> None:
    """A campaign of many messages starting writes its events in one long transaction: their
    ids come before events other transactions committed meanwhile. The cursor keeps the range
    it passed and reads it, a limit at a time, when they appear."""
    webhooks.add(engine, CLOCK, settings, receiver.url, ["sent"])
    send_id = make_campaign(engine, settings, 3)
    now = CLOCK.now()
    with engine.begin() as conn:
        top = int(conn.execute(select(func.max(message_events.c.id))).scalar_one())
        conn.execute(  # committed first, with the later id
            insert(message_events),
            [{"id": top + 1001, "message_id": 1, "send_id": send_id, "at": now, "kind": "sent"}],
        )
    assert store.fan_out(engine, now, limit=300) == 1
    with engine.begin() as conn:  # the long transaction commits its 1,000 events
        conn.execute(
            insert(message_events),
            [
                {"id": top + i, "message_id": 2, "send_id": send_id, "at": now, "kind": "sent"}
                for i in range(1, 1001)
            ],
        )
    made = [store.fan_out(engine, now + k, limit=300) for k in range(1, 6)]
    assert made == [300, 300, 300, 100, 0]
    with engine.connect() as conn:
        ids = [r.event_id for r in conn.execute(select(webhook_deliveries.c.event_id))]
    assert len(ids) == len(set(ids)) == 1001


def test_delivered_events_age_out_and_waiting_ones_stay(
    engine: Engine, settings: Settings, smtp_server: tuple[Recorder, int], receiver: Receiver
) -> None:
    added = webhooks.add(engine, CLOCK, settings, receiver.url, ["queued", "sent", "bounced"])
    campaign(engine, settings, smtp_server[0], n=3)
    dispatch_until(engine, settings, lambda: len(receiver.events(added.secret)) >= 6)
    # user0 queued, not yet delivered (user1 bounced above: suppressed, not materialised).
    make_campaign(engine, settings, 2, list_name="later")
    store.fan_out(engine, CLOCK.now())
    assert store.prune(engine, CLOCK.now() + 1, 100, 10) == 6
    assert webhooks.get(engine, added.webhook.id)[1] == {
        "pending": 1,
        "batched": 0,
        "delivered": 0,
        "dead": 0,
    }
