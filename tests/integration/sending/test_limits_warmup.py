"""Per-domain rates and warm-up caps with a real worker and real SMTP servers, on SQLite and
PostgreSQL: a relay's daily cap sends that many and holds the rest (not attempted, not aged)
until the next day, or hands them to an uncapped relay; a domain's rate spreads its mail out."""

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from steadymail.config import RelaySettings
from steadymail.store import message_log
from steadymail.store.schema import messages
from tests.conftest import Recorder
from tests.helpers import (
    free_port,
    make_campaign,
    run_worker_until,
    send_state,
    text_campaign,
    worker_for,
)


@pytest.fixture
def second_relay() -> Iterator[tuple[Recorder, int]]:
    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def states(engine: Engine, send_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    messages.c.id,
                    messages.c.state,
                    messages.c.attempts,
                    messages.c.first_attempt_at,
                    messages.c.next_attempt_at,
                ).where(messages.c.send_id == send_id)
            )
        )


def test_a_relays_warmup_cap_holds_the_rest_until_tomorrow(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    today = datetime.now(UTC).date()
    # Five a day for three days (the same cap should the test straddle midnight).
    relay = RelaySettings(host="127.0.0.1", port=port, warmup=[5, 5, 5], warmup_start=today)
    settings = settings_for(db_url, port, relays=[relay])
    send_id = text_campaign(engine, settings, 12)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine),
            lambda: sum(r.state == "deferred" for r in states(engine, send_id)) == 7,
        )
    )
    assert recorder.count() == 5
    held = [r for r in states(engine, send_id) if r.state == "deferred"]
    [(attempts, first, until)] = {(r.attempts, r.first_attempt_at, r.next_attempt_at) for r in held}
    # Not attempted, not aged, due at the start of the next UTC day.
    assert (attempts, first) == (0, None)
    assert until % 86400 == 0 and 0 < until - time.time() <= 86400
    [event] = [e for e in message_log.history(engine, held[0].id) if e.kind == "deferred"]
    assert "warm-up" in event.detail
    assert send_state(engine, send_id) == "running"


def test_a_capped_relay_hands_the_rest_to_the_next(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    second_relay: tuple[Recorder, int],
    settings_for: Any,
) -> None:
    (first, port1), (second, port2) = smtp_server, second_relay
    today = datetime.now(UTC).date()
    capped = RelaySettings(host="127.0.0.1", port=port1, warmup=[3], warmup_start=today)
    settings = settings_for(
        db_url, port1, relays=[capped, RelaySettings(host="127.0.0.1", port=port2)]
    )
    send_id = text_campaign(engine, settings, 10)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    assert (first.count(), second.count()) == (3, 7)


def test_a_domains_rate_spreads_its_mail_out(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    arrivals: list[float] = []

    async def timed_data(server: Any, session: Any, envelope: Any) -> str:
        arrivals.append(time.time())
        return await Recorder.handle_DATA(recorder, server, session, envelope)

    recorder.handle_DATA = timed_data  # type: ignore[method-assign]
    settings = settings_for(
        db_url, port, domain_rate_limits={"example.com": 20}, worker_concurrency=4
    )
    send_id = make_campaign(engine, settings, 60)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    assert len(arrivals) == 60
    # 60 at 20 a second take at least three one-second windows (unlimited, they all arrive
    # within a fraction of a second).
    assert len({int(t) for t in arrivals}) >= 3, sorted(arrivals)
