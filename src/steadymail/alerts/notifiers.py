"""Notifiers (log, JSON webhook, Slack-compatible webhook, email through the platform) and the
dispatcher that drains the outbox with retries, apart from detection."""

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import NotifierSettings
from steadymail.store import alerts as store
from steadymail.store.alerts import DueNotification

log = logging.getLogger("steadymail.notify")

# send_email(to, subject, text): the platform's own transactional path.
SendEmail = Callable[[list[str], str, str], None]


_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def _origin(match: re.Match[str]) -> str:
    try:
        parts = urlsplit(match.group(0))
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    except ValueError:
        return "<url>"


def redact_urls(text: str) -> str:
    """`text` with every http(s) URL cut to its scheme and host: a webhook URL's path and query
    are its credential (Slack's, for one), and errors (httpx's name the URL) reach the log and
    the database."""
    return _URL.sub(_origin, text)


def payload(n: DueNotification) -> dict[str, Any]:
    """What a notifier is told (a webhook's JSON body)."""
    return {
        "alert_id": n.alert_id,
        "event": n.event,
        "fingerprint": n.fingerprint,
        "name": n.name,
        "severity": n.severity,
        "state": n.state.value,
        "summary": n.summary,
        "labels": n.labels,
        "started_at": n.started_at,
        "resolved_at": n.resolved_at,
    }


def headline(p: dict[str, Any]) -> str:
    mark = "RESOLVED" if p["event"] == "resolved" else f"FIRING {p['severity'].upper()}"
    return f"[{mark}] {p['summary']} (alert {p['alert_id']}, {p['name']})"


class Dispatcher:
    """Delivers due notifications; a failure is retried with exponential backoff."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        notifiers: list[NotifierSettings],
        send_email: SendEmail,
        retry_base: float,
        max_attempts: int,
    ) -> None:
        self._engine, self._clock = engine, clock
        self._by_name = {n.name: n for n in notifiers}
        self._send_email = send_email
        self._base, self._max = retry_base, max_attempts
        self._http = httpx.AsyncClient()

    async def _deliver(self, notifier: NotifierSettings, p: dict[str, Any]) -> None:
        if notifier.kind == "log":
            log.warning("event=alert_notification %s", headline(p))
        elif notifier.kind == "webhook":
            r = await self._http.post(notifier.url, json=p, timeout=notifier.timeout)
            r.raise_for_status()
        elif notifier.kind == "slack":
            r = await self._http.post(
                notifier.url, json={"text": headline(p)}, timeout=notifier.timeout
            )
            r.raise_for_status()
        else:
            text = "\n".join(f"{k}: {v}" for k, v in p.items())
            await asyncio.to_thread(self._send_email, notifier.to, headline(p), text)

    async def drain(self) -> int:
        """Try every due notification once; returns how many were delivered."""
        rows = await asyncio.to_thread(
            store.due_notifications, self._engine, self._clock.now(), self._max
        )
        delivered = 0
        for row in rows:
            notifier = self._by_name.get(row.notifier)
            p = payload(row)
            try:
                if notifier is None:
                    raise ValueError(f"no notifier named {row.notifier!r}")
                await self._deliver(notifier, p)
            except Exception as e:
                delay = self._base * 2**row.attempts
                error = redact_urls(str(e) or type(e).__name__)
                log.warning(
                    "event=notify_failed notifier=%s alert=%d attempt=%d error=%r",
                    row.notifier,
                    row.alert_id,
                    row.attempts + 1,
                    error,
                )
                await asyncio.to_thread(
                    store.notification_failed,
                    self._engine,
                    row.id,
                    self._clock.now() + delay,
                    error,
                )
                continue
            delivered += 1
            await asyncio.to_thread(
                store.notification_done,
                self._engine,
                row.id,
                self._clock.now(),
                row.alert_id,
                f"{row.event} sent to {row.notifier}",
            )
        return delivered

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.drain()
            except Exception as e:
                log.error("event=dispatch_failed error=%r", redact_urls(str(e)))
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self._http.aclose()
