"""Each console page against a region's real database and a real worker: what an operator
does there reaches the platform, and what the platform holds is shown (escaped)."""

import asyncio
import time

from steadymail.alerts.manager import AlertManager
from steadymail.clock import SystemClock
from steadymail.services import flag_admin
from steadymail.store import alerts, capture, instances, metric_series, tracking
from steadymail.store.capture import CapturedMail
from steadymail.store.tracking import TrackingEvent
from steadymail.web.site import PREVIEW_CSP
from tests.helpers import run_worker_until, send_state, worker_for
from tests.integration.web.conftest import Console

CLOCK = SystemClock()
CSV = (
    "email,first_name\n"
    "ann@example.com,Ann\n"
    "not-an-address,Bob\n"
    "cat@example.com,<script>alert(1)</script>\n"
    "\n"
    "dan@example.com,Dan,extra\n"
)


def _import(console: Console) -> str:
    c, token = console.signed_in()
    made = c.post("/ui/lists", data={"name": "news", "csrf": token}, headers=console.origin)
    assert made.status_code == 303
    r = c.post(
        "/ui/lists/news/import",
        data={"csrf": token},
        files={"file": ("contacts.csv", CSV.encode(), "text/csv")},
        headers=console.origin,
    )
    assert r.status_code == 200, r.text
    return r.text


def test_an_import_reports_each_bad_line_and_keeps_the_good_rows(console: Console) -> None:
    report = _import(console)
    assert "<strong>2</strong> imported" in report and "<strong>2</strong> refused" in report
    # The lines as the file numbers them (the header is line 1).
    assert "<td>3</td>" in report and "<td>6</td>" in report
    c, _ = console.signed_in()
    page = c.get("/ui/lists/news").text
    assert "ann@example.com" in page and "cat@example.com" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "not-an-address" not in page
    assert "ann@example.com" not in c.get("/ui/lists/news?q=cat").text


def test_the_editor_shows_errors_at_their_line_and_previews_for_a_contact(
    console: Console,
) -> None:
    _import(console)
    c, token = console.signed_in()
    broken = {"subject": "Hi", "html": "<p>one</p>\n<p>{{ first_name }</p>", "csrf": token}
    r = c.post("/ui/preview/check", data=broken, headers=console.origin)
    assert "line 2" in r.text and "{{ first_name }&lt;/p&gt;" in r.text.replace("</p>", "")
    good = {
        "subject": "Hi {{ first_name }}",
        "html": "<p>Hello {{ first_name }}</p>",
        "text": "Hello",
        "preview_list": "news",
        "preview_email": "CAT@example.com",
        "csrf": token,
    }
    check = c.post("/ui/preview/check", data=good, headers=console.origin)
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in check.text
    html = c.post("/ui/preview/html", data=good, headers=console.origin)
    assert html.headers["content-security-policy"] == PREVIEW_CSP
    assert "&lt;script&gt;" in html.text and "<script>" not in html.text
    missing = {**good, "preview_email": "nobody@example.com"}
    assert "no contact" in c.post("/ui/preview/check", data=missing, headers=console.origin).text
    # Saved, then edited; a bad edit is refused and the template keeps its parts.
    created = c.post(
        "/ui/templates",
        data={"name": "welcome", **{k: good[k] for k in ("subject", "html", "text", "csrf")}},
        headers=console.origin,
    )
    assert created.status_code == 303
    tid = created.headers["location"].split("/")[-1].split("?")[0]
    bad_edit = c.post(f"/ui/templates/{tid}", data=broken, headers=console.origin)
    assert bad_edit.status_code == 422 and "line 2" in bad_edit.text
    assert "Hello {{ first_name }}" in c.get(f"/ui/templates/{tid}").text


def test_a_campaign_made_in_the_console_is_sent_and_shown_to_the_end(console: Console) -> None:
    _import(console)
    c, token = console.signed_in()
    tpl = c.post(
        "/ui/templates",
        data={
            "name": "news",
            "subject": "Hi {{ first_name }}",
            "html": '<p>Hi <a href="https://example.com/a">a</a></p>',
            "csrf": token,
        },
        headers=console.origin,
    )
    tid = tpl.headers["location"].split("/")[-1].split("?")[0]
    r = c.post(
        "/ui/sends",
        data={"name": "first", "list": "news", "template": tid, "when": "draft", "csrf": token},
        headers=console.origin,
    )
    assert r.status_code == 303
    send_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert "draft" in c.get(f"/ui/live/sends/{send_id}").text
    started = c.post(
        f"/ui/sends/{send_id}/start", headers={**console.origin, "X-CSRF-Token": token}
    )
    assert started.status_code == 200 and "running" in started.text
    paused = c.post(f"/ui/sends/{send_id}/pause", headers={**console.origin, "X-CSRF-Token": token})
    assert "paused" in paused.text and ">Resume<" in paused.text
    c.post(f"/ui/sends/{send_id}/resume", headers={**console.origin, "X-CSRF-Token": token})
    worker = worker_for(console.settings, console.engine)
    asyncio.run(
        run_worker_until(worker, lambda: send_state(console.engine, send_id) == "completed")
    )
    live = c.get(f"/ui/live/sends/{send_id}").text
    assert "100.0%" in live and "completed" in live
    # Engagement: two human clicks a minute apart and a machine's, drawn per interval.
    now = CLOCK.now()
    events = [
        TrackingEvent("click", send_id, 1, now - 120, "GET", 0, "https://example.com/a"),
        TrackingEvent("click", send_id, 2, now - 30, "GET", 0, "https://example.com/a"),
        TrackingEvent(
            "click", send_id, 2, now - 30, "GET", 0, "https://example.com/a", machine=True
        ),
    ]
    tracking.insert_events(console.engine, events)
    chart = c.get(f"/ui/sends/{send_id}/engagement.json").json()
    assert sum(chart["clicks"]) == 2 and chart["bucket"] >= 60
    assert chart["t"] == sorted(chart["t"]) and all(t % chart["bucket"] == 0 for t in chart["t"])
    assert "https://example.com/a" in c.get(f"/ui/sends/{send_id}").text
    # Scheduled for later in a time zone.
    later = c.post(
        "/ui/sends",
        data={
            "name": "later",
            "list": "news",
            "template": tid,
            "when": "later",
            "at": "2099-01-02T09:30",
            "tz": "Europe/Paris",
            "csrf": token,
        },
        headers=console.origin,
    )
    page = c.get(later.headers["location"]).text
    assert "scheduled" in page and "2099-01-02 08:30:00" in page


def test_overview_shows_services_with_restarts_sends_and_alerts(console: Console) -> None:
    now = CLOCK.now()
    for i, started in enumerate((now - 7200, now - 50, now - 1)):
        instances.register(
            console.engine,
            instance_id=f"w-{i}",
            service="worker",
            region=console.settings.region,
            host="h",
            pid=100 + i,
            version="t",
            now=started,
            slot="worker-1",
        )
    AlertManager(console.engine, CLOCK, []).fire(
        "restarted:worker-1", "service_restarted", "warning", "worker-1 <restarted>", {}
    )
    c, _ = console.signed_in()
    live = c.get("/ui/live/overview").text
    row = live[live.index("<td>worker-1</td>") :].split("</tr>")[0]
    assert "<td>up</td>" in row and "<td>2</td>" in row  # two restarts within the hour
    assert "ended without a word" in row  # the instance replaced said nothing
    assert "service_restarted" in live and "worker-1 &lt;restarted&gt;" in live


def test_alerts_are_acknowledged_and_silenced_from_their_page(console: Console) -> None:
    flag_admin.set_flag(console.engine, CLOCK, "tracking.version", "v2", "bob", "test")
    alert_id, _ = AlertManager(console.engine, CLOCK, []).fire(
        "stall:9", "send_stalled", "critical", "send 9 stalled", {"send": 9}
    )
    c, token = console.signed_in()
    page = c.get(f"/ui/alerts/{alert_id}").text
    assert "tracking.version" in page  # the suspect change it names
    r = c.post(f"/ui/alerts/{alert_id}/ack", data={"csrf": token}, headers=console.origin)
    assert r.status_code == 303
    assert "acknowledged" in c.get(f"/ui/alerts/{alert_id}").text.lower()
    r = c.post(
        f"/ui/alerts/{alert_id}/silence",
        data={"minutes": "30", "reason": "known", "csrf": token},
        headers=console.origin,
    )
    assert r.status_code == 303
    with console.engine.connect() as conn:
        assert alerts.is_silenced(conn, "send_stalled", {"send": 9}, CLOCK.now() + 25 * 60)
        assert not alerts.is_silenced(conn, "send_stalled", {"send": 9}, CLOCK.now() + 31 * 60)
    md = c.get(f"/ui/alerts/{alert_id}/incident.md")
    assert md.status_code == 200 and "send_stalled" in md.text


def test_metrics_are_listed_and_drawn_with_their_flag_changes(console: Console) -> None:
    now = CLOCK.now()
    res = console.settings.metrics_interval
    points = [(now - 60 + i * res, "sent_rate", float(i)) for i in range(10)]
    metric_series.put_points(console.engine, console.settings.region, res, points)
    flag_admin.set_flag(console.engine, CLOCK, "tracking.version", "v2", "bob", "test")
    c, _ = console.signed_in()
    assert "sent_rate" in c.get("/ui/metrics").text
    data = c.get("/ui/metrics/series.json?name=sent_rate").json()
    assert len(data["points"]) == 10 and data["flag_changes"][0]["name"] == "tracking.version"
    assert "tracking.version" in c.get("/ui/metrics/series?name=sent_rate").text


def test_captured_mail_is_shown_in_a_sandbox_with_its_exact_source(console: Console) -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: <b>hello</b>\r\n"
        b"X-Long: first\r\n\tfolded\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b'<p onclick="x()">Hi</p><script>alert(1)</script>\r\n'
    )
    box = capture.open_capture(console.settings.resolved_capture_db())
    capture.store(
        box,
        [
            CapturedMail(
                time.time(), "a@example.com", "b@example.com", "<b>hello</b>", "m", len(raw), raw
            )
        ],
    )
    c, _ = console.signed_in()
    listing = c.get("/ui/captured").text
    assert "&lt;b&gt;hello&lt;/b&gt;" in listing and "<b>hello</b>" not in listing
    cid = listing.split('href="/ui/captured/')[1].split('"')[0]
    page = c.get(f"/ui/captured/{cid}").text
    assert "X-Long: first\r\n\tfolded" in page or "X-Long: first\n\tfolded" in page
    assert "<script>alert(1)</script>" not in page
    assert 'sandbox src="/ui/captured/' in page
    html = c.get(f"/ui/captured/{cid}/html")
    assert html.headers["content-security-policy"] == PREVIEW_CSP  # nothing in it can run
    assert c.get(f"/ui/captured/{cid}/raw").content == raw
