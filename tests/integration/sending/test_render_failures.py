"""A message that cannot be built fails alone: the worker, and every other message, carry on."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.errors import ValidationError
from steadymail.services import campaigns, csv_import, flag_admin, templates
from steadymail.store import sends
from steadymail.tracking.rewrite import RewriterCrash
from tests.conftest import CLOCK, Recorder
from tests.helpers import make_campaign, run_worker_until, send_state, worker_for

# Adds a string to an int, but only for contacts whose name starts with "Bad".
PICKY = (
    "{% if first_name.startswith('Bad') %}{{ first_name + 1 }}{% endif %}<p>Hi {{ first_name }}</p>"
)


def by_email(engine: Engine, send_id: int) -> dict[str, sends.Message]:
    return {r.email: r for r in sends.message_rows(engine, send_id, 1000)}


def test_a_template_failing_for_some_contacts_fails_only_their_messages(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    bad = "bad1@example.com,Bad1\nbad2@example.com,Bad2\n"
    send_id = make_campaign(engine, settings, 20, html=PICKY, extra_rows=bad)
    worker = worker_for(settings, engine)
    # run_worker_until raises if the worker dies before the send completes.
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert sends.progress(engine, send_id).counts == {"sent": 20, "failed": 2}
    rows = by_email(engine, send_id)
    for email in ("bad1@example.com", "bad2@example.com"):
        assert rows[email].state == "failed"
        assert "TypeError" in rows[email].last_error and "html part" in rows[email].last_error
    assert {m.rcpt for m in recorder.messages} == {f"user{i}@example.com" for i in range(20)}
    assert worker.stats.failed == 2 and worker.stats.sent == 20


def test_a_campaign_failing_for_its_first_contacts_is_refused_before_it_starts(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    _, port = smtp_server
    settings = settings_for(db_url, port)
    rows = "email,first_name\nok@example.com,Ok\nbad@example.com,Bad\n"
    csv_import.import_contacts(engine, CLOCK, rows.encode(), "picky")
    templates.create_template(engine, CLOCK, "picky", "Hi", PICKY, "")  # fine with no contact
    with pytest.raises(ValidationError, match=r"bad@example\.com.*TypeError"):
        campaigns.create_campaign(
            engine, CLOCK, settings, name="c", list_name="picky", template="picky"
        )


def test_stream_messages_that_cannot_be_built_fail_alone(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """Payloads queued without the API's checks (an older version, a bug): each fails alone."""
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    stream = sends.stream_send_id(engine, "transactional", "app@example.com", CLOCK.now())
    busy = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    payloads: list[tuple[str, dict[str, Any]]] = [
        ("typeerror@example.com", {"subject": "s", "text": "{{ n + 1 }}", "vars": {"n": "x"}}),
        ("nosubject@example.com", {"text": "no subject at all"}),
        ("badvars@example.com", {"subject": "s", "text": "t", "vars": ["not", "a", "dict"]}),
        ("slow@example.com", {"subject": "s", "text": busy}),
        ("bomb@example.com", {"subject": "s", "text": "{{ 9**(9**9) }}"}),
        ("deep@example.com", {"subject": "s", "html": "<div>" * 200_000}),
        ("fine@example.com", {"subject": "Fine", "text": "All good {{ n }}", "vars": {"n": 1}}),
    ]
    sends.enqueue_stream_messages(engine, stream, payloads, CLOCK.now())
    worker = worker_for(settings, engine)
    worker.composer.deadline = 0.5  # keep the slow one's stop short

    def settled() -> bool:
        rows = by_email(engine, stream)
        return all(r.state in ("sent", "failed") for r in rows.values())

    asyncio.run(run_worker_until(worker, settled))
    rows = by_email(engine, stream)
    assert rows["fine@example.com"].state == "sent"
    reasons = {e: r.last_error for e, r in rows.items() if r.state == "failed"}
    assert set(reasons) == {e for e, _ in payloads} - {"fine@example.com"}
    assert "TypeError" in reasons["typeerror@example.com"]
    assert "KeyError" in reasons["nosubject@example.com"]
    assert "vars" in reasons["badvars@example.com"]
    assert "more than 0.5s of CPU time" in reasons["slow@example.com"]
    assert "power past" in reasons["bomb@example.com"]
    assert "200000 elements deep" in reasons["deep@example.com"]
    assert [m.rcpt for m in recorder.messages] == ["fine@example.com"]


def test_the_rewriter_drill_still_ends_the_worker(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """The fault drill's crash stands for one below Python: no per-message guard may hide it."""
    _, port = smtp_server
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 8)
    flag_admin.set_flag(engine, CLOCK, "fault.tracking_crash", {"one_in": 1}, "test", "drill", "R1")
    worker = worker_for(settings, engine)
    with pytest.raises(RewriterCrash):
        asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert worker.stats.sent == 0
