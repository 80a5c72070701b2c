"""Scheduled campaigns, on SQLite and PostgreSQL: scheduled, moved and cancelled over real HTTP,
started by a real worker at their time (never before), each exactly once however many workers
look; one whose template no longer renders goes back to draft instead of starting."""

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from steadymail.cli.content import cancel_cmd, schedule_cmd, send_cmd, status_cmd
from steadymail.errors import Conflict, ValidationError
from steadymail.sending.scheduler import start_due
from steadymail.services import campaigns, csv_import, templates
from steadymail.store import sends
from steadymail.store.schema import messages, platform_events
from steadymail.store.schema import templates as template_rows
from tests.conftest import CLOCK, LiveApi, Recorder
from tests.helpers import cli_against, running, send_state, wait_until_async, worker_for


def draft(engine: Engine, settings: Any, n: int, name: str = "news") -> int:
    rows = "email,first_name\n" + "".join(f"user{i}@example.com,User{i}\n" for i in range(n))
    csv_import.import_contacts(engine, CLOCK, rows.encode(), name)
    templates.create_template(engine, CLOCK, f"t-{name}", "Hi", "", "Hello {{ first_name }}")
    return campaigns.create_campaign(
        engine, CLOCK, settings, name=f"c-{name}", list_name=name, template=f"t-{name}"
    )


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def materialised(engine: Engine, send_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(messages).where(messages.c.send_id == send_id)
            ).scalar_one()
        )


def test_schedule_move_and_cancel_over_http(
    live_api: LiveApi, engine: Engine, settings_for: Any, db_url: str
) -> None:
    settings = settings_for(db_url, 25)
    first, second = draft(engine, settings, 3, "first"), draft(engine, settings, 3, "second")
    with httpx.Client(
        base_url=live_api.url, headers={"Authorization": f"Bearer {live_api.key}"}, timeout=30
    ) as c:
        # A wall time in a zone: 09:00 in Berlin on 1 December is 08:00 UTC.
        r = c.post(
            f"/v1/sends/{first}/schedule", json={"at": "2099-12-01T09:00", "tz": "Europe/Berlin"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "scheduled"
        assert r.json()["scheduled_at"] == datetime(2099, 12, 1, 8, tzinfo=UTC).timestamp()
        got = c.get(f"/v1/sends/{first}").json()
        assert (got["state"], got["scheduled_at"]) == ("scheduled", r.json()["scheduled_at"])
        # Moved before it starts, with an offset this time.
        moved = c.post(f"/v1/sends/{first}/schedule", json={"at": "2099-12-02T10:00:00+00:00"})
        assert moved.json()["scheduled_at"] == datetime(2099, 12, 2, 10, tzinfo=UTC).timestamp()
        # Refused: a wall time without a zone, an hour that happens twice, the past.
        for body, why in [
            ({"at": "2099-12-01T09:00"}, "which time zone"),
            ({"at": "2026-10-25T02:30", "tz": "Europe/Berlin"}, "happens twice"),
            ({"at": "2001-01-01T00:00", "tz": "UTC"}, "in the past"),
            ({"at": "2099-12-01T09:00", "tz": "Nowhere/Land"}, "unknown time zone"),
        ]:
            refused = c.post(f"/v1/sends/{second}/schedule", json=body)
            assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
        assert c.get(f"/v1/sends/{second}").json()["state"] == "draft"
        # Cancelled before it starts: nothing was ever materialised, and it cannot come back.
        assert c.post(f"/v1/sends/{first}/cancel").json()["state"] == "cancelled"
        again = c.post(f"/v1/sends/{first}/schedule", json={"at": "2099-12-01T09:00Z"})
        assert again.status_code == 409
    assert materialised(engine, first) == 0
    assert start_due(engine, settings, datetime(2100, 1, 1, tzinfo=UTC).timestamp()) == []


def test_a_worker_starts_a_scheduled_send_at_its_time_not_before(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    send_id = draft(engine, settings, 20)
    at = CLOCK.now() + 2.0
    campaigns.schedule(engine, CLOCK, send_id, datetime.fromtimestamp(at, UTC))

    async def run() -> float:
        worker = worker_for(settings, engine)
        task = asyncio.create_task(worker.run())
        try:
            # While it waits, the worker runs and leaves it alone.
            await wait_until_async(lambda: CLOCK.now() >= at - 0.5, 10, alive=running(task))
            assert send_state(engine, send_id) == "scheduled"
            assert materialised(engine, send_id) == 0
            await wait_until_async(
                lambda: send_state(engine, send_id) == "completed", 30, alive=running(task)
            )
            return sends.get_send(engine, send_id).started_at or 0.0
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    started_at = asyncio.run(run())
    assert started_at >= at
    print(f"\nscheduled start {started_at - at:.3f} s after its time")
    assert len({m.rcpt for m in recorder.messages}) == 20


def test_many_workers_looking_at_once_start_it_once(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    settings = settings_for(db_url, 25)
    send_id = draft(engine, settings, 50)
    sends.schedule(engine, send_id, CLOCK.now() - 1)
    started: list[list[int]] = []
    barrier = threading.Barrier(4)

    def look() -> None:
        barrier.wait()
        started.append(start_due(engine, settings, CLOCK.now()))

    threads = [threading.Thread(target=look) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(s) for s in started) == [0, 0, 0, 1]
    assert materialised(engine, send_id) == 50
    assert send_state(engine, send_id) == "running"


def test_a_send_whose_template_no_longer_renders_goes_back_to_draft(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    settings = settings_for(db_url, 25)
    send_id = draft(engine, settings, 5)
    sends.schedule(engine, send_id, CLOCK.now() - 1)
    with engine.begin() as conn:  # broken behind the API's back since it was scheduled
        conn.execute(update(template_rows).values(text="Hello {{ coupon }}"))
    assert start_due(engine, settings, CLOCK.now()) == []
    assert send_state(engine, send_id) == "draft"
    assert materialised(engine, send_id) == 0
    with engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(platform_events.c.kind))]
    assert "scheduled_send_refused" in kinds
    # A draft is scheduled again only through the checks, which say why.
    with pytest.raises(ValidationError, match="coupon"):
        campaigns.schedule(engine, CLOCK, send_id, datetime.fromtimestamp(CLOCK.now() + 60, UTC))


def test_the_commands(
    engine: Engine,
    db_url: str,
    settings_for: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = settings_for(db_url, 25)
    rows = "email,first_name\n" + "".join(f"c{i}@example.com,C{i}\n" for i in range(3))
    csv_import.import_contacts(engine, CLOCK, rows.encode(), "cli")
    templates.create_template(engine, CLOCK, "t-cli", "Hi", "", "Hello {{ first_name }}")
    cli_against(monkeypatch, db_url, settings.data_dir, tmp_path)
    cli = typer.Typer()
    cli.command("send")(send_cmd)
    cli.command("schedule")(schedule_cmd)
    cli.command("status")(status_cmd)
    cli.command("cancel")(cancel_cmd)
    run = CliRunner().invoke

    r = run(
        cli,
        [
            "send",
            "later",
            "--list",
            "cli",
            "--template",
            "t-cli",
            "--at",
            "2099-12-01 09:00",
            "--tz",
            "Europe/Berlin",
        ],
    )
    assert r.exit_code == 0 and "starts 2099-12-01 08:00:00 UTC" in r.output, r.output
    [send_id] = [s.id for s in sends.all_sends(engine) if s.name == "later"]
    assert materialised(engine, send_id) == 0
    r = run(cli, ["schedule", str(send_id), "--at", "2099-12-02 10:00+00:00"])
    assert r.exit_code == 0 and "starts 2099-12-02 10:00:00 UTC" in r.output, r.output
    r = run(cli, ["status", str(send_id)])
    assert "scheduled (starts 2099-12-02 10:00:00 UTC)" in r.output, r.output
    r = run(cli, ["schedule", str(send_id), "--at", "2026-03-29 02:30", "--tz", "Europe/Berlin"])
    assert isinstance(r.exception, ValidationError)
    assert "does not exist in Europe/Berlin" in str(r.exception)
    r = run(cli, ["cancel", str(send_id)])
    assert r.exit_code == 0 and "cancelled" in r.output
    assert send_state(engine, send_id) == "cancelled"


def test_a_send_moved_later_after_it_was_found_due_is_not_started(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    settings = settings_for(db_url, 25)
    send_id = draft(engine, settings, 5)
    now = CLOCK.now()
    sends.schedule(engine, send_id, now - 1)
    assert sends.due_scheduled(engine, now) == [send_id]  # a worker found it due...
    sends.schedule(engine, send_id, now + 3600)  # ...and the user moved it meanwhile
    with pytest.raises(Conflict, match="not due"):
        sends.start_campaign(engine, send_id, settings.batch_size, now, when_due=True)
    assert send_state(engine, send_id) == "scheduled" and materialised(engine, send_id) == 0
    assert start_due(engine, settings, now) == []
