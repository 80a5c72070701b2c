"""Tracking over real HTTP: links from a message that went through the pipeline into aiosmtpd."""

import asyncio
import email
import email.policy
import re
import time
from dataclasses import asdict
from typing import Any

import httpx
from selectolax.lexbor import LexborHTMLParser
from sqlalchemy import Engine, select

from steadymail.store import suppressions, tracking
from steadymail.store.schema import tracking_events
from tests.conftest import LiveApi, Recorder
from tests.helpers import make_campaign, run_worker_until, send_state, wait_until, worker_for

HTML = (
    '<p>Hi {{ first_name }}</p><a href="https://shop.example.com/sale?c=1&amp;d=2#top">'
    'Sale</a> <a href="mailto:help@example.com">help</a>'
    '<a href="{{ unsubscribe_url }}">unsubscribe</a>'
)
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0"}


def deliver(live_api: LiveApi, engine: Engine, recorder: Recorder, n: int = 3) -> int:
    send_id = make_campaign(
        engine,
        live_api.settings,
        n,
        html=HTML,
        text="Hi {{ first_name }}: https://shop.example.com/sale?c=1&d=2#top",
    )
    worker = worker_for(live_api.settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    return send_id


def parts(raw: bytes) -> tuple[Any, str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return msg, html, text


def events(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(tracking_events).order_by(tracking_events.c.id)))


def test_links_pixel_and_one_click_unsubscribe(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    send_id = deliver(live_api, engine, recorder)
    msg, html, text = parts(
        next(m.data for m in recorder.messages if m.rcpt == "user1@example.com")
    )
    links = [a.attributes.get("href") or "" for a in LexborHTMLParser(html).css("a")]
    click_url, mailto, unsub_url = links
    assert click_url.startswith(live_api.public_url + "/t/c/")
    assert mailto == "mailto:help@example.com"
    assert unsub_url.startswith(live_api.public_url + "/u/")
    assert re.search(re.escape(click_url), text)  # text part carries the same tracked link
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"<{unsub_url}>" in msg["List-Unsubscribe"] and "mailto:" in msg["List-Unsubscribe"]

    with httpx.Client(headers=BROWSER) as http:
        r = http.get(click_url)
        assert r.status_code == 302
        assert r.headers["location"] == "https://shop.example.com/sale?c=1&d=2#top"
        assert http.head(click_url).status_code == 302  # a scanner's HEAD
        token = click_url.rsplit("/", 1)[1]
        for bad in (
            token[:-3],
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            "k1.AAAA.AAAA",
            token.replace(".", "", 1),
        ):
            r = http.get(f"{live_api.public_url}/t/c/{bad}")
            assert r.status_code == 404 and "location" not in r.headers
        assert http.get(f"{live_api.public_url}/t/o/{token}").status_code == 404  # wrong kind

        pixel = re.search(r'src="([^"]*/t/o/[^"]+)"', html)
        assert pixel
        r = http.get(pixel.group(1))
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        assert r.content.startswith(b"GIF89a") and "no-store" in r.headers["cache-control"]
        http.get(pixel.group(1), headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy

        page = http.get(unsub_url)
        assert page.status_code == 200 and '<form method="post">' in page.text
        assert not suppressions.is_suppressed(engine, "user1@example.com")
        r = http.post(
            unsub_url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert suppressions.is_suppressed(engine, "user1@example.com")  # at once, not batched

    wait_until(lambda: len(events(engine)) == 5, timeout=10)
    got = [(e.kind, e.method, e.machine, e.reason) for e in events(engine)]
    assert got == [
        ("click", "GET", 0, ""),
        ("click", "HEAD", 1, "head-request"),
        ("open", "GET", 0, ""),
        ("open", "GET", 1, "apple-privacy-proxy"),
        ("unsubscribe", "POST", 0, ""),
    ]
    assert all(len(e.ip_hash) == 64 and "127.0.0.1" not in e.ip_hash for e in events(engine))
    stats = httpx.get(
        f"{live_api.url}/v1/sends/{send_id}/stats",
        headers={"Authorization": f"Bearer {live_api.key}"},
    ).json()
    assert stats["delivered"] == 3 and stats["unsubscribes"] == 1
    assert (stats["opens_total"], stats["opens_unique"], stats["opens_machine"]) == (1, 1, 1)
    assert (stats["clicks_total"], stats["clicks_unique"], stats["clicks_machine"]) == (1, 1, 1)
    assert stats["links"] == [
        {
            "link": 0,
            "url": "https://shop.example.com/sale?c=1&d=2#top",
            "clicks_total": 1,
            "clicks_unique": 1,
            "clicks_machine": 1,
        }
    ]
    assert asdict(tracking.send_stats(engine, send_id)) == {**stats, "links": tuple(stats["links"])}


def test_recorded_events_survive_a_clean_shutdown(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    deliver(live_api, engine, recorder, n=1)
    _, html, _ = parts(recorder.messages[0].data)
    click_url = LexborHTMLParser(html).css_first("a").attributes.get("href") or ""
    recorder_obj = live_api.state.recorder
    recorder_obj._interval = 3600  # nothing is written until shutdown
    with httpx.Client(headers=BROWSER) as http:
        for _ in range(20):
            assert http.get(click_url).status_code == 302
    live_api.stop()
    assert len([e for e in events(engine) if e.kind == "click"]) == 20


def test_mailto_unsubscribe(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    from urllib.parse import parse_qs, unquote, urlsplit

    import aiosmtplib

    from steadymail.inbound.server import start_inbound
    from tests.helpers import free_port

    recorder, _ = smtp_server
    deliver(live_api, engine, recorder, n=2)
    msg, _, _ = parts(next(m.data for m in recorder.messages if m.rcpt == "user0@example.com"))
    mailto = re.search(r"<(mailto:[^>]+)>", msg["List-Unsubscribe"])
    assert mailto
    target = urlsplit(mailto.group(1))
    subject = unquote(parse_qs(target.query)["subject"][0])
    signer = live_api.state.signer
    port = free_port()
    controller, handler = start_inbound(
        engine, signer, live_api.settings.message_id_domain, "127.0.0.1", port
    )

    async def send(rcpt: str, subj: str) -> None:
        body = f"From: user0@example.com\r\nTo: {rcpt}\r\nSubject: {subj}\r\n\r\nplease\r\n"
        await aiosmtplib.send(
            body.encode(),
            sender="user0@example.com",
            recipients=[rcpt],
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
        )

    try:
        for rcpt, subj in (
            (target.path, subject.replace("unsubscribe ", "unsubscribe x")),
            ("someone@steadymail.local", subject),
        ):
            try:
                asyncio.run(send(rcpt, subj))
                raise AssertionError("should have been refused")
            except (aiosmtplib.SMTPDataError, aiosmtplib.SMTPRecipientsRefused) as e:
                assert "550" in str(e)
        assert not suppressions.is_suppressed(engine, "user0@example.com")
        asyncio.run(send(target.path, subject))
    finally:
        controller.stop()
    assert handler.processed == 1
    assert suppressions.is_suppressed(engine, "user0@example.com")
    assert not suppressions.is_suppressed(engine, "user1@example.com")


def test_repeated_opens_and_unsubscribes_cost_no_new_write(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    from sqlalchemy import event

    recorder, _ = smtp_server
    deliver(live_api, engine, recorder, n=1)
    _, html, _ = parts(recorder.messages[0].data)
    links = [a.attributes.get("href") or "" for a in LexborHTMLParser(html).css("a")]
    unsub_url = links[-1]
    pixel = re.search(r'src="([^"]*/t/o/[^"]+)"', html)
    assert pixel
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.lstrip().split(None, 3)
        if words[0].upper() in ("INSERT", "UPDATE", "DELETE") and any(
            t in statement for t in ("suppressions", "contacts", "tracking_events")
        ):
            writes.append(statement)

    with httpx.Client(headers=BROWSER) as http:
        assert http.get(pixel.group(1)).status_code == 200
        assert http.post(unsub_url).status_code == 200
        wait_until(lambda: len(events(engine)) == 2, timeout=10)
        event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(5):
                assert http.get(pixel.group(1)).status_code == 200
                r = http.post(unsub_url)
                assert r.status_code == 200 and "any more" in r.text
            live_api.state.recorder.flush()
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert writes == []
    assert [e.kind for e in events(engine)] == ["open", "unsubscribe"]


def test_a_full_event_buffer_never_blocks_a_route(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    deliver(live_api, engine, recorder, n=1)
    _, html, _ = parts(recorder.messages[0].data)
    click_url = LexborHTMLParser(html).css_first("a").attributes.get("href") or ""
    rec = live_api.state.recorder
    rec._interval = 3600  # nothing is written while we flood it
    rec._max = 3
    with httpx.Client(headers=BROWSER) as http:
        for _ in range(10):
            assert http.get(click_url).status_code == 302
    # The writer may have taken a group mid-flood; either way the rest was dropped, not queued.
    assert rec.pending <= 3 and rec.dropped > 0


def test_an_expired_token_is_a_404_like_a_forged_one(live_api: LiveApi) -> None:
    from steadymail.tracking.tokens import Kind, TokenData, TokenSigner

    app_signer = live_api.state.signer
    keys, kid = app_signer._keys, app_signer._kid
    # Signed with the region's own key, by a clock a day ago, to live for an hour.
    old = TokenSigner(keys, kid, {Kind.CLICK: 3600, Kind.OPEN: 3600}, lambda: time.time() - 86400)
    fresh = TokenSigner(keys, kid, {Kind.CLICK: 3600})
    data = TokenData(Kind.CLICK, 1, 1, 0, "https://example.com/")
    with httpx.Client(headers=BROWSER) as http:
        assert http.get(f"{live_api.public_url}/t/c/{fresh.sign(data)}").status_code == 302
        r = http.get(f"{live_api.public_url}/t/c/{old.sign(data)}")
        assert r.status_code == 404 and "location" not in r.headers
        pixel = old.sign(TokenData(Kind.OPEN, 1, 1))
        assert http.get(f"{live_api.public_url}/t/o/{pixel}").status_code == 404
