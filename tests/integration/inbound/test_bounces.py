"""Bounces and complaints end to end, on SQLite and PostgreSQL: a real worker sends with VERP
return paths into aiosmtpd; reports in the shapes receivers send (tests/data/bounces/shapes),
addressed to those return paths, are delivered over SMTP to `steadymail inbound`, which fails
the message, suppresses the address (hard bounce: every stream; complaint: the message's
stream; soft bounces: past the policy), writes the events, ignores auto-replies, and keeps
what it cannot read for review."""

import asyncio
import contextlib
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from steadymail.cli.messages_cmd import reports_app
from steadymail.config import Settings
from steadymail.domain.verp import message_of, verp_address
from steadymail.inbound.server import InboundHandler, start_inbound
from steadymail.store import inbound, message_log, suppressions
from steadymail.store.schema import messages
from steadymail.tracking.keys import load_tracking_secrets
from tests.conftest import LiveApi, Recorder
from tests.helpers import (
    cli_against,
    free_port,
    make_campaign,
    run_worker_until,
    send_state,
    worker_for,
)

SHAPES = Path(__file__).parents[2] / "data" / "bounces" / "shapes"
SAMPLE_VERP = "bounces+1f-0123456789abcdef@bounces.example.com"


@contextlib.contextmanager
def inbound_server(engine: Engine, settings: Settings) -> Iterator[tuple[int, InboundHandler]]:
    secrets = load_tracking_secrets(settings)
    port = free_port()
    controller, handler = start_inbound(
        engine,
        secrets.signer,
        settings.message_id_domain,
        "127.0.0.1",
        port,
        settings=settings,
        verp_keys=secrets.verp_keys,
    )
    try:
        yield port, handler
    finally:
        controller.stop()


def shape(name: str, verp: str) -> bytes:
    """A report from the corpus, addressed (and quoting a return path) as it would be for the
    message whose return path is `verp`."""
    return (SHAPES / name).read_bytes().replace(SAMPLE_VERP.encode(), verp.encode())


def deliver(port: int, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("", [rcpt], raw)


@pytest.fixture
def sent(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> tuple[Settings, dict[str, str], dict[str, int]]:
    """A campaign of 6 delivered by a real worker: each recipient's return path and message."""
    recorder, port = smtp_server
    settings = settings_for(db_url, port, soft_bounce_limit=2)
    send_id = make_campaign(engine, settings, 6)
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    paths = {m.rcpt: m.mail_from for m in recorder.messages}
    with engine.connect() as conn:
        ids = {r.email: int(r.id) for r in conn.execute(select(messages.c.email, messages.c.id))}
    return settings, paths, ids


def test_each_message_carries_a_signed_return_path_naming_it(
    sent: tuple[Settings, dict[str, str], dict[str, int]],
) -> None:
    settings, paths, ids = sent
    keys = load_tracking_secrets(settings).verp_keys
    for rcpt, path in paths.items():
        assert path.startswith("bounces+") and path.endswith("@example.com"), path
        assert message_of(path, keys) == ids[rcpt]
    # Forged: another message's id with this one's mac, or another key.
    some = paths["user0@example.com"]
    assert message_of(some.replace("bounces+", "bounces+1"), keys) is None
    assert message_of(some, [b"another key"]) is None


def test_a_hard_bounce_fails_the_message_and_suppresses_everywhere(
    engine: Engine, sent: tuple[Settings, dict[str, str], dict[str, int]]
) -> None:
    settings, paths, ids = sent
    verp = paths["user1@example.com"]
    with inbound_server(engine, settings) as (port, handler):
        deliver(port, verp, shape("gmail_no_such_user.eml", verp))
        deliver(port, verp, shape("gmail_no_such_user.eml", verp))  # the same, again
    assert handler.errors == 0
    row = _message(engine, ids["user1@example.com"])
    assert (row.state, row.smtp_code) == ("bounced", 550)
    assert "The email account that you tried to reach does not exist" in row.last_error
    assert suppressions.is_suppressed(engine, "user1@example.com", marketing=False)
    [s] = suppressions.listing(engine, search="user1@")
    assert (s.reason, s.stream.value, s.message_id) == ("hard_bounce", "all", row.id)
    kinds = [e.kind for e in message_log.history(engine, row.id)]
    assert kinds == ["queued", "sent", "bounced"]  # the repeat raised no second event
    reports = inbound.reports(engine)
    assert [(r.kind, r.status, r.message_id) for r in reports] == [
        ("hard_bounce", "applied", row.id)
    ] * 2


def test_a_complaint_suppresses_the_stream_the_message_came_from(
    engine: Engine, sent: tuple[Settings, dict[str, str], dict[str, int]]
) -> None:
    settings, paths, ids = sent
    with inbound_server(engine, settings) as (port, _):
        # Sent to the feedback-loop address; the original it quotes carries the return path.
        deliver(
            port,
            "fbl@bounces.example.com",
            shape("arf_yahoo_style.eml", paths["user2@example.com"]),
        )
    mid = ids["user2@example.com"]
    assert suppressions.is_suppressed(engine, "user2@example.com", marketing=True)
    assert not suppressions.is_suppressed(engine, "user2@example.com", marketing=False)
    [s] = suppressions.listing(engine, search="user2@")
    assert (s.reason, s.stream.value, s.message_id) == ("complaint", "marketing", mid)
    assert [e.kind for e in message_log.history(engine, mid)][-1] == "complained"
    assert _message(engine, mid).state == "sent"  # delivered, then complained about


def test_soft_bounces_are_counted_and_suppress_past_the_policy(
    engine: Engine,
    sent: tuple[Settings, dict[str, str], dict[str, int]],
    smtp_server: tuple[Recorder, int],
) -> None:
    """Messages that soft-bounced count, not reports: one message's repeated delay warnings
    count once; a second message to the address soft-bouncing reaches the policy (2 here)."""
    settings, paths, ids = sent
    verp = paths["user3@example.com"]
    with inbound_server(engine, settings) as (port, _):
        deliver(port, verp, shape("gmail_over_quota_delayed.eml", verp))
        deliver(port, verp, shape("gmail_over_quota_delayed.eml", verp))
        deliver(port, verp, shape("postfix_gave_up_connection_refused.eml", verp))
        assert not suppressions.is_suppressed(engine, "user3@example.com", marketing=False)
        # The next campaign's message to the same address soft-bounces too.
        smtp_server[0].messages.clear()
        again = make_campaign(engine, settings, 6, list_name="again")
        asyncio.run(
            run_worker_until(
                worker_for(settings, engine), lambda: send_state(engine, again) == "completed"
            )
        )
        later = next(m.mail_from for m in smtp_server[0].messages if m.rcpt == "user3@example.com")
        deliver(port, later, shape("postfix_gave_up_connection_refused.eml", later))
    assert suppressions.is_suppressed(engine, "user3@example.com", marketing=False)
    [s] = suppressions.listing(engine, search="user3@")
    assert s.reason == "soft_bounce" and "2 soft bounces" in s.detail
    assert _message(engine, ids["user3@example.com"]).state == "sent"


def test_auto_replies_are_ignored_and_what_cannot_be_read_is_kept_for_review(
    engine: Engine, sent: tuple[Settings, dict[str, str], dict[str, int]]
) -> None:
    settings, paths, _ids = sent
    verp = paths["user4@example.com"]
    raw = (SHAPES / "garbage.bin").read_bytes()
    # In lines an SMTP server takes (a longer one is refused at DATA, as any server would).
    garbage = b"\r\n".join(raw[i : i + 70] for i in range(0, len(raw), 70))
    with inbound_server(engine, settings) as (port, handler):
        deliver(port, verp, shape("ooo_exchange_automatic_reply.eml", verp))
        deliver(port, verp, shape("human_reply.eml", verp))
        deliver(port, "fbl@bounces.example.com", garbage)
        # A report for a message of ours that never quotes a return path we signed.
        deliver(port, "fbl@bounces.example.com", (SHAPES / "arf_rfc5965_abuse.eml").read_bytes())
        # And the server still works.
        deliver(port, verp, shape("postfix_user_unknown.eml", verp))
    assert handler.errors == 0
    statuses = [(r.kind, r.status) for r in reversed(inbound.reports(engine))]
    assert statuses == [
        ("autoreply", "ignored"),
        ("unknown", "review"),
        ("unknown", "review"),
        ("complaint", "review"),
        ("hard_bounce", "applied"),
    ]
    review = inbound.reports(engine, status="review")
    assert inbound.raw_report(engine, review[-1].id) == shape("human_reply.eml", verp)
    assert [s.email for s in suppressions.listing(engine)] == ["user4@example.com"]


def test_unknown_and_forged_recipients_are_refused_at_rcpt(
    engine: Engine, sent: tuple[Settings, dict[str, str], dict[str, int]]
) -> None:
    settings, _paths, ids = sent
    forged = verp_address(ids["user5@example.com"], b"not our key", "example.com")
    with inbound_server(engine, settings) as (port, _):
        for rcpt in (forged, "someone@example.com", "bounces+zz-nothex@example.com"):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    smtp.sendmail("", [rcpt], b"Subject: x\r\n\r\nx\r\n")
                assert refused.value.recipients[rcpt][0] == 550
    assert inbound.reports(engine) == []
    assert suppressions.listing(engine) == []


def _message(engine: Engine, mid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(messages).where(messages.c.id == mid)).first()


def test_kept_reports_are_listed_shown_whole_and_read_again(
    live_api: LiveApi,
    engine: Engine,
    sent: tuple[Settings, dict[str, str], dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    db_url: str,
) -> None:
    settings, paths, ids = sent
    verp = paths["user5@example.com"]
    with inbound_server(engine, settings) as (port, _):
        deliver(port, verp, shape("human_reply.eml", verp))
        deliver(port, verp, shape("postfix_user_unknown.eml", verp))
    auth = {"Authorization": f"Bearer {live_api.key}"}
    with httpx.Client(base_url=live_api.url, headers=auth, timeout=30) as c:
        [review] = c.get("/v1/inbound-reports", params={"status": "review"}).json()
        assert review["kind"] == "unknown" and review["rcpt"] == verp
        raw = c.get(f"/v1/inbound-reports/{review['id']}/raw")
        assert raw.content == shape("human_reply.eml", verp)
        [applied] = c.get("/v1/inbound-reports", params={"status": "applied"}).json()
        again = c.post(f"/v1/inbound-reports/{applied['id']}/reprocess").json()
        assert (again["kind"], again["status"]) == ("hard_bounce", "applied")
        assert c.get("/v1/inbound-reports", params={"status": "nope"}).status_code == 422
    # Read twice, applied once: one suppression, the message bounced.
    assert len(suppressions.listing(engine, search="user5@")) == 1
    assert _message(engine, ids["user5@example.com"]).state == "bounced"

    cli_against(monkeypatch, db_url, settings.data_dir, tmp_path)
    cli = typer.Typer()
    cli.add_typer(reports_app, name="reports")
    cli.command("noop")(lambda: None)
    r = CliRunner().invoke(cli, ["reports", "list", "--status", "review"])
    assert r.exit_code == 0 and "unknown" in r.output, r.output


def test_kept_reports_age_out_except_those_waiting_for_review(
    engine: Engine, sent: tuple[Settings, dict[str, str], dict[str, int]]
) -> None:
    settings, paths, _ids = sent
    verp = paths["user4@example.com"]
    with inbound_server(engine, settings) as (port, _):
        deliver(port, verp, shape("human_reply.eml", verp))
        deliver(port, verp, shape("postfix_user_unknown.eml", verp))
    assert inbound.prune(engine, time.time() + 1, 100, 10) == 1
    assert [r.status for r in inbound.reports(engine)] == ["review"]
