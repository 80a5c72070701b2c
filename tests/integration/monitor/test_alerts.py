"""The alert manager, the notification outbox with a real webhook receiver, and incidents."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.incident import export_markdown
from steadymail.alerts.manager import AlertManager
from steadymail.alerts.notifiers import Dispatcher
from steadymail.clock import FakeClock
from steadymail.config import NotifierSettings
from steadymail.store import alerts, events


class Receiver:
    """A real HTTP server that records JSON posts and can be told to fail the first N."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail_left = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_left > 0:
                    outer.fail_left -= 1
                    self.send_response(503)
                else:
                    outer.posts.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_dedup_resolve_silence_and_notify(engine: Engine) -> None:
    clock = FakeClock(4_000_000_000.0)
    hook, slack = Receiver(fail_first=2), Receiver()
    notifiers = [
        NotifierSettings(name="hook", kind="webhook", url=hook.url),
        NotifierSettings(name="chat", kind="slack", url=slack.url),
        NotifierSettings(name="log"),
    ]
    sent_mail: list[tuple[list[str], str]] = []
    notifiers.append(NotifierSettings(name="mail", kind="email", to=["ops@example.com"]))
    manager = AlertManager(engine, clock, [n.name for n in notifiers])
    dispatcher = Dispatcher(
        engine,
        clock,
        notifiers,
        lambda to, subject, text: sent_mail.append((to, subject)),
        retry_base=1.0,
        max_attempts=5,
    )
    try:
        first, opened = manager.fire(
            "restarted:worker-1",
            "service_restarted",
            "critical",
            "worker-1 restarted",
            {"slot": "worker-1"},
        )
        again, reopened = manager.fire(
            "restarted:worker-1",
            "service_restarted",
            "critical",
            "worker-1 restarted",
            {"slot": "worker-1"},
        )
        assert opened and not reopened and first == again
        assert asyncio.run(dispatcher.drain()) == 3  # the webhook failed once (503)
        clock.advance(1.5)
        assert asyncio.run(dispatcher.drain()) == 0  # failed again (second 503)
        clock.advance(2.5)
        assert asyncio.run(dispatcher.drain()) == 1  # third try gets through
        assert manager.note("restarted:worker-1", "mitigation", "batch 3 reclaimed")
        clock.advance(10)
        assert manager.resolve("restarted:worker-1", "healthy for 20s") == first
        asyncio.run(dispatcher.drain())
        assert [p["event"] for p in hook.posts] == ["firing", "resolved"]
        assert hook.posts[0]["summary"] == "worker-1 restarted"
        assert [p["text"][:10] for p in slack.posts] == ["[FIRING CR", "[RESOLVED]"]
        assert sent_mail[0][1].startswith("[FIRING CRITICAL] worker-1 restarted")

        alerts.add_silence(
            engine, "send_stalled", {"send": 7}, clock.now() + 60, "drill", clock.now()
        )
        quiet, _ = manager.fire("stall:send:7", "send_stalled", "critical", "stalled", {"send": 7})
        manager.fire("stall:send:8", "send_stalled", "critical", "stalled", {"send": 8})
        assert asyncio.run(dispatcher.drain()) == 4  # only send 8's alert went out
        timeline = [e.kind for e in alerts.get(engine, quiet).timeline]
        assert timeline == ["fired", "silenced"]
        kinds = [e.kind for e in alerts.get(engine, first).timeline]
        assert kinds[0] == "fired" and "mitigation" in kinds and kinds.count("notified") == 8
    finally:
        hook.close()
        slack.close()


def test_incident_export_reads_like_a_postmortem(engine: Engine) -> None:
    clock = FakeClock(4_000_000_000.0)
    manager = AlertManager(engine, clock, [])
    events.append(
        engine,
        region="R1",
        kind="process_exited",
        subject="worker-1",
        detail={"slot": "worker-1", "reason": "signal SIGKILL", "instance": "a"},
        now=clock.now(),
    )
    clock.advance(0.8)
    alert_id, _ = manager.fire(
        "restarted:worker-1",
        "service_restarted",
        "critical",
        "worker-1 restarted",
        {"slot": "worker-1", "region": "R1"},
    )
    clock.advance(1)
    manager.fire(
        "stall:send:4", "send_stalled", "critical", "send 4 stalled", {"send": 4, "region": "R1"}
    )
    clock.advance(2)
    events.append(
        engine,
        region="R1",
        kind="lease_reclaimed",
        subject="send:4",
        detail={"batch": 9, "send": 4, "epoch": 2, "at_risk": 6, "by": "worker-2"},
        now=clock.now(),
    )
    clock.advance(1)
    manager.resolve("stall:send:4", "send 4 resumed")
    clock.advance(20)
    manager.resolve("restarted:worker-1", "healthy for 20s")
    md = export_markdown(engine, alert_id, clock.now())
    assert md.startswith(f"# Incident {alert_id}: worker-1 restarted")
    assert "Detected: " in md and "(0.8 s after the first symptom)" in md
    assert "(4.8 s after the first symptom)" in md  # resumed
    assert "Affected sends: 1 (4); messages re-sent after a crash: 6" in md
    phases = [line.split(" | ")[1] for line in md.splitlines() if line.startswith("| 20")]
    assert phases == ["symptom", "detection", "detection", "mitigation", "resumption", "resolution"]
