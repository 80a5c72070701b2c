"""Suppression on both databases: any spelling of an address, two streams, the 0008 migration."""

import asyncio
from dataclasses import replace
from typing import Any

from alembic import command
from sqlalchemy import Engine, insert, select, text

from steadymail.services import campaigns, csv_import, templates, transactional
from steadymail.store import suppressions as suppression_list
from steadymail.store import tracking
from steadymail.store.db import alembic_config
from steadymail.store.schema import messages, suppressions, tracking_events
from tests.conftest import Recorder
from tests.helpers import CLOCK, run_worker_until, worker_for


def test_display_name_and_case_do_not_matter(engine: Engine) -> None:
    assert suppression_list.suppress(engine, '"Ann" <Ann@Example.COM>', "unsubscribed", 1.0)
    assert not suppression_list.suppress(engine, "ANN@example.com", "unsubscribed", 2.0)  # a repeat
    assert suppression_list.is_suppressed(engine, "ann@example.com")
    assert suppression_list.is_suppressed(engine, "Someone <ANN@EXAMPLE.com>")
    assert not suppression_list.is_suppressed(engine, "ann@example.com", marketing=False)
    suppression_list.suppress(engine, "Ann <ann@EXAMPLE.com>", "hard_bounce", 3.0)
    assert suppression_list.is_suppressed(engine, "ann@example.com", marketing=False)
    with engine.connect() as conn:
        rows = conn.execute(select(suppressions.c.email, suppressions.c.stream)).all()
    assert sorted(map(tuple, rows)) == [
        ("ann@example.com", "all"),
        ("ann@example.com", "marketing"),
    ]


def _states(engine: Engine, send_id: int) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.email, messages.c.state).where(messages.c.send_id == send_id)
        )
        return {r.email: r.state for r in rows}


def test_newsletter_unsubscribe_never_blocks_a_password_reset(
    engine: Engine, db_url: str, settings_for: Any, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    # Dee was unsubscribed before she was imported, under another spelling.
    suppression_list.suppress(engine, "Dee <dee@example.com>", "unsubscribed", CLOCK.now())
    csv = b"email\nann@example.com\nbob@example.com\ncy@example.com\nDEE@Example.com\n"
    csv_import.import_contacts(engine, CLOCK, csv, "news")
    suppression_list.suppress(engine, '"Ann" <Ann@Example.COM>', "unsubscribed", CLOCK.now())
    suppression_list.suppress(engine, "Bob <BOB@example.com>", "hard_bounce", CLOCK.now())

    reset = dict(subject="Reset", text="your code", from_addr="Acct <acct@example.com>")
    ids = transactional.enqueue(
        engine, CLOCK, settings, to=['"Ann" <ANN@example.com>', "Bob <bob@EXAMPLE.com>"], **reset
    )
    offers_unsub = transactional.enqueue(
        engine, CLOCK, settings, to=["Ann <ann@example.com>"], list_unsubscribe=True, **reset
    )
    assert offers_unsub["send_id"] == ids["send_id"]
    templates.create_template(engine, CLOCK, "weekly", "News", "", "hello")
    send_id = campaigns.create_campaign(
        engine,
        CLOCK,
        settings,
        name="weekly",
        list_name="news",
        template="weekly",
        from_addr="news@example.com",
    )
    started = campaigns.start(engine, CLOCK, settings, send_id)
    assert started.suppressed == 3 and started.messages == 1  # only cy

    stream = ids["send_id"]

    def done() -> bool:
        states = _states(engine, stream)
        return all(s in ("sent", "suppressed") for s in states.values()) and all(
            s == "sent" for s in _states(engine, send_id).values()
        )

    asyncio.run(run_worker_until(worker_for(settings, engine), done))
    # Ann's password reset went out; Bob (bounced) got nothing; her newsletter-like mail did not.
    assert sorted(m.rcpt.lower() for m in recorder.messages) == [
        "ann@example.com",
        "cy@example.com",
    ]
    with engine.connect() as conn:
        st = dict(
            conn.execute(
                select(messages.c.id, messages.c.state).where(messages.c.send_id == stream)
            ).all()
        )
    assert [st[i] for i in ids["message_ids"]] == ["sent", "suppressed"]
    assert [st[i] for i in offers_unsub["message_ids"]] == ["suppressed"]


def test_migration_keeps_the_meaning_of_old_rows(db_url: str, engine: Engine) -> None:
    cfg = alembic_config(db_url)
    command.downgrade(cfg, "0007")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO suppressions (email, reason, detail, created_at) VALUES "
                "('\"ann\" <ann@example.com>', 'hard_bounce', '', 1), "
                "('bob@example.com', 'unsubscribed', '', 2)"
            )
        )
        event = {
            "kind": "open",
            "send_id": 1,
            "message_id": 7,
            "link": 0,
            "url": "",
            "method": "GET",
            "user_agent": "",
            "ip_hash": "",
            "machine": 0,
            "reason": "",
        }
        conn.execute(insert(tracking_events), [{**event, "at": float(i)} for i in range(3)])
        conn.execute(insert(tracking_events), [{**event, "kind": "click", "at": 9.0}] * 2)
    command.upgrade(cfg, "head")
    assert suppression_list.is_suppressed(engine, "Ann@Example.com", marketing=False)
    assert suppression_list.is_suppressed(engine, "bob@example.com")
    assert not suppression_list.is_suppressed(engine, "bob@example.com", marketing=False)
    with engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(tracking_events.c.kind))]
    assert sorted(kinds) == ["click", "click", "open"]
    # A repeated open is no new row; clicks still count.
    opened = tracking.TrackingEvent(kind="open", send_id=1, message_id=7, at=10.0, method="GET")
    tracking.insert_events(engine, [opened, replace(opened, kind="click", at=11.0)])
    with engine.connect() as conn:
        assert len(conn.execute(select(tracking_events.c.id)).all()) == 4
    command.downgrade(cfg, "0007")
    command.upgrade(cfg, "head")
