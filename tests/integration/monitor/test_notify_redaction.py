"""A webhook URL is a credential: a failed delivery's error keeps only its scheme and host, in
the log and in the database."""

import asyncio
import logging

import pytest
from sqlalchemy import Engine, select

from steadymail.alerts.manager import AlertManager
from steadymail.alerts.notifiers import Dispatcher, redact_urls
from steadymail.clock import FakeClock
from steadymail.config import NotifierSettings
from steadymail.store.schema import notifications
from tests.integration.monitor.test_alerts import Receiver

SECRET = "T0001/B0002/s3cr3tT0ken"


def test_urls_keep_scheme_and_host_only() -> None:
    text = (
        "Server error '503 Service Unavailable' for url "
        f"'https://user:pw@hooks.example.com:8443/services/{SECRET}?token=abc#x'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503"
    )
    out = redact_urls(text)
    assert "'https://hooks.example.com:8443'" in out and "https://developer.mozilla.org" in out
    for gone in (SECRET, "token=abc", "user:pw", "/services", "/Status/503"):
        assert gone not in out
    assert redact_urls("no url here") == "no url here"


def test_a_failed_webhook_is_logged_and_stored_without_its_path(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(4_000_000_000.0)
    hook = Receiver(fail_first=1)
    url = f"{hook.url}/{SECRET}?token=abc"
    notifier = NotifierSettings(name="hook", kind="webhook", url=url)
    manager = AlertManager(engine, clock, ["hook"])
    dispatcher = Dispatcher(engine, clock, [notifier], lambda *_: None, 1.0, 5)
    try:
        manager.fire("restarted:worker-1", "service_restarted", "critical", "restarted", {})
        with caplog.at_level(logging.WARNING, logger="steadymail.notify"):
            assert asyncio.run(dispatcher.drain()) == 0  # 503
        with engine.connect() as conn:
            [error] = conn.execute(select(notifications.c.last_error)).scalars()
        logged = "\n".join(r.getMessage() for r in caplog.records)
        host = hook.url.rsplit("/", 1)[0]
        for text in (error, logged):
            assert "503" in text and host in text
            assert SECRET not in text and "token=abc" not in text and "/hook" not in text
        clock.advance(2)
        assert asyncio.run(dispatcher.drain()) == 1 and len(hook.posts) == 1
    finally:
        hook.close()
        asyncio.run(dispatcher.close())
