"""SMTP faults from a scripted aiosmtpd server: the pipeline's reply handling, for real."""

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from steadymail.config import RelaySettings
from steadymail.store import sends, suppressions
from steadymail.store.schema import batches
from tests.conftest import Recorder
from tests.helpers import (
    CLOCK,
    free_port,
    make_campaign,
    run_worker_until,
    running,
    send_state,
    wait_until_async,
    worker_for,
)


def by_email(engine: Engine, send_id: int) -> dict[str, sends.Message]:
    return {m.email: m for m in sends.message_rows(engine, send_id, 1000)}


def run_to_end(engine: Engine, settings: Any, send_id: int) -> None:
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))


def test_temporary_failure_is_retried_with_backoff(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    recorder.rcpt_script = lambda rcpt, n: (
        "451 4.7.1 greylisted" if rcpt.startswith("user3@") and n < 3 else None
    )
    send_id = make_campaign(engine, settings := settings_for(db_url, port), 12)
    run_to_end(engine, settings, send_id)
    row = by_email(engine, send_id)["user3@example.com"]
    assert row.state == "sent" and row.attempts == 3 and row.smtp_code == 250
    assert Counter(m.rcpt for m in recorder.messages)["user3@example.com"] == 1
    assert len({m.rcpt for m in recorder.messages}) == 12


def test_deferral_gives_up_after_max_age(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    recorder.rcpt_script = lambda rcpt, n: "421 4.3.2 busy" if rcpt.startswith("user1@") else None
    settings = settings_for(db_url, port, defer_max_age=0.5)
    send_id = make_campaign(engine, settings, 4)
    run_to_end(engine, settings, send_id)
    row = by_email(engine, send_id)["user1@example.com"]
    assert row.state == "failed" and "expired" in row.last_error and row.attempts >= 2


def test_hard_bounce_suppresses_the_address_for_later_sends(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    recorder.rcpt_script = lambda rcpt, n: (
        "550 5.1.1 no such user" if rcpt.startswith("user5@") else None
    )
    recorder.data_script = lambda rcpt, n: (
        "554 5.7.1 content rejected" if rcpt.startswith("user6@") else None
    )
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 10)
    run_to_end(engine, settings, send_id)
    rows = by_email(engine, send_id)
    assert rows["user5@example.com"].state == "bounced"
    assert rows["user5@example.com"].smtp_code == 550
    assert rows["user6@example.com"].state == "bounced"
    assert suppressions.is_suppressed(engine, "USER5@example.com")
    assert not suppressions.is_suppressed(
        engine, "user6@example.com"
    )  # message refused, not address

    recorder.messages.clear()
    second = make_campaign(
        engine,
        settings,
        0,
        list_name="news2",
        extra_rows="user5@example.com,Again\nuser9@example.com,Nine\n",
    )
    assert sends.get_send(engine, second).suppressed == 1
    run_to_end(engine, settings, second)
    assert [m.rcpt for m in recorder.messages] == ["user9@example.com"]


def test_dropped_connection_mid_data_is_retried_on_a_new_connection(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    recorder.data_script = lambda rcpt, n: "DROP" if rcpt.startswith("user7@") and n == 1 else None
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 10)
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert by_email(engine, send_id)["user7@example.com"].state == "sent"
    assert Counter(m.rcpt for m in recorder.messages)["user7@example.com"] == 1
    assert worker.pool.connections_opened >= 2


def test_failover_to_the_next_relay(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    dead = RelaySettings(host="127.0.0.1", port=free_port())  # nothing listens there
    settings = settings_for(db_url, port, relays=[dead, RelaySettings(host="127.0.0.1", port=port)])
    send_id = make_campaign(engine, settings, 20)
    run_to_end(engine, settings, send_id)
    assert len({m.rcpt for m in recorder.messages}) == 20
    assert sends.progress(engine, send_id).counts == {"sent": 20}


def _received_of(recorder: Recorder, send_id: int) -> int:
    with recorder.lock:
        return sum(1 for m in recorder.messages if m.message_id.startswith(f"<sm.{send_id}."))


def _leased_batches(engine: Engine, send_id: int) -> int:
    with engine.connect() as conn:
        return len(
            conn.execute(
                select(batches.c.id).where(
                    batches.c.send_id == send_id, batches.c.state == "leased"
                )
            ).all()
        )


def test_pause_stops_and_resume_finishes(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """While a send is paused the worker keeps working (other sends go out meanwhile: the
    proof that it ran), and nothing of the paused send goes out."""
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 300)
    sends.change_state(engine, send_id, "pause", CLOCK.now())
    first = make_campaign(engine, settings, 60, list_name="first")
    worker = worker_for(settings, engine)

    async def scenario() -> None:
        task = asyncio.create_task(worker.run())
        alive = running(task)

        async def until(cond: Any, what: str) -> None:
            await wait_until_async(cond, 30, what, alive=alive)

        await until(lambda: send_state(engine, first) == "completed", "the other send done")
        assert _received_of(recorder, send_id) == 0  # paused before anything went out
        sends.change_state(engine, send_id, "resume", CLOCK.now())
        await until(lambda: _received_of(recorder, send_id) >= 50, "50 sent after resume")
        sends.change_state(engine, send_id, "pause", CLOCK.now())
        # The worker saw the pause: it gave back every batch of the send.
        await until(lambda: _leased_batches(engine, send_id) == 0, "the batches given back")
        frozen = _received_of(recorder, send_id)
        second = make_campaign(engine, settings, 60, list_name="second")
        await until(lambda: send_state(engine, second) == "completed", "the next send done")
        assert _received_of(recorder, send_id) == frozen < 300  # nothing more while paused
        sends.change_state(engine, send_id, "resume", CLOCK.now())
        await until(lambda: send_state(engine, send_id) == "completed", "the send completed")
        worker.stop()
        await task

    asyncio.run(asyncio.wait_for(scenario(), 90))
    mine = [m.rcpt for m in recorder.messages if m.message_id.startswith(f"<sm.{send_id}.")]
    assert sorted(Counter(mine).values()) == [1] * 300


def test_a_relay_without_smtputf8_bounces_that_message_and_raises_nothing() -> None:
    """aiosmtplib raises SMTPNotSupported when a message needs SMTPUTF8 and the relay lacks it:
    a verdict for that one message (no suppression: the address is not at fault), never an
    exception that would fail the worker's whole window."""
    import asyncio

    from aiosmtpd.controller import Controller

    from steadymail.config import RelaySettings
    from steadymail.domain.delivery import Outcome
    from tests.conftest import Recorder
    from tests.helpers import free_port, lone_pool

    controller = Controller(
        Recorder(), hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False
    )
    controller.start()
    try:
        pool = lone_pool(RelaySettings(host="127.0.0.1", port=controller.port, starttls="off"))

        async def go() -> tuple[object, object]:
            try:
                bad = await pool.send(
                    "a@example.com", "zoë@example.com", b"Subject: x\r\n\r\nhi\r\n", smtputf8=True
                )
                good = await pool.send(
                    "a@example.com", "b@example.com", b"Subject: x\r\n\r\nhi\r\n"
                )
                return bad, good
            finally:
                await pool.close()

        bad, good = asyncio.run(go())
    finally:
        controller.stop()
    assert bad.outcome == Outcome.BOUNCE and not bad.hard, bad  # type: ignore[attr-defined]
    assert "cannot carry" in bad.detail  # type: ignore[attr-defined]
    assert good.outcome == Outcome.SENT  # type: ignore[attr-defined]
