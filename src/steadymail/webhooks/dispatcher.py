"""The webhook dispatcher (`steadymail webhooks`): the outbox read, batches signed and sent.

Every `webhook_poll` seconds it turns newly committed message-log events into pending
deliveries (store/webhooks.fan_out), then, for every webhook with work due, takes a batch and
POSTs it: one request per webhook at a time (its events stay in order), many webhooks at once.
A 2xx delivers the batch; anything else, or no answer within `webhook_timeout`, schedules the
same batch (same `webhook-id`) again with doubling backoff, for `webhook_retry_for` (3 days);
a webhook whose every attempt failed for `webhook_disable_after` (6 h) is disabled, which the
monitor alerts on. Several dispatchers may run: the store's conditions make each attempt one
dispatcher's.

Webhook URLs that resolve to loopback, private or link-local addresses are refused unless
`webhook_allow_private` is set (so a customer cannot make the platform call its own internals).
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.webhooks import retry_delay, sign
from steadymail.errors import ValidationError
from steadymail.store import webhooks as store
from steadymail.store.webhooks import Batch

log = logging.getLogger("steadymail.webhooks")


def check_url(url: str, allow_private: bool) -> str:
    """An http(s) URL whose host resolves only to public addresses (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValidationError("a webhook URL carries no credentials (sign with the secret)")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise ValidationError(f"the webhook host {parts.hostname!r} does not resolve") from e
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise ValidationError(
                f"the webhook host {parts.hostname!r} is a {_kind(addr)} address ({addr}); "
                "set webhook_allow_private to allow it"
            )
    return url


def _kind(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    return "private" if addr.is_private else "non-public"


def body_of(batch: Batch, now: float) -> bytes:
    """The request body: a Standard Webhooks payload whose data is the batch's events."""
    payload = {
        "type": "message.events",
        "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
        "data": {"events": batch.events},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self._client = client or httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
            headers={"User-Agent": "steadymail-webhooks"},
        )
        self._stop = asyncio.Event()
        self._busy: set[int] = set()
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self.delivered = self.failed = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stop.is_set():
                try:
                    await self.step(tasks)
                except Exception as e:
                    log.error("event=webhook_step_failed error=%r", str(e))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.webhook_poll)
        finally:
            if tasks and self._stop.is_set():
                # A graceful stop: each sender ends after the batch in hand (its POST bounded by
                # webhook_timeout), so a batch the receiver took is recorded as delivered instead
                # of sent again after its lease; cancelled only if that overruns.
                await asyncio.wait(list(tasks), timeout=self.settings.webhook_timeout + 5.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._client.aclose()

    async def step(self, tasks: set[asyncio.Task[None]]) -> None:
        """Fan out what is new; start a sender for every due webhook not already sending."""
        now = self.clock.now()
        await asyncio.to_thread(store.fan_out, self.engine, now)
        for webhook_id in await asyncio.to_thread(store.due, self.engine, now):
            if webhook_id in self._busy:
                continue
            self._busy.add(webhook_id)
            task = asyncio.create_task(self._drain(webhook_id))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _drain(self, webhook_id: int) -> None:
        """Send the webhook's batches one after the other while they succeed."""
        try:
            async with self._slots:
                while not self._stop.is_set() and await self.send_one(webhook_id):
                    pass
        except Exception as e:
            log.error("event=webhook_drain_failed webhook=%d error=%r", webhook_id, str(e))
        finally:
            self._busy.discard(webhook_id)

    async def send_one(self, webhook_id: int) -> bool:
        """Take and send one batch; True if it was delivered (there may be more)."""
        s = self.settings
        now = self.clock.now()
        batch = await asyncio.to_thread(
            store.take_batch,
            self.engine,
            webhook_id,
            s.webhook_batch_size,
            now,
            now + 2 * s.webhook_timeout,
        )
        if batch is None:
            return False
        hook, secret = await asyncio.to_thread(store.target, self.engine, webhook_id)
        error = await self._post(hook.url, secret, batch)
        now = self.clock.now()
        if error is None:
            if not await asyncio.to_thread(store.delivered, self.engine, batch, now):
                log.warning("event=webhook_attempt_overtaken batch=%s", batch.id)
                return False
            self.delivered += len(batch.events)
            return True
        self.failed += 1
        delay = retry_delay(batch.attempts + 1, s.webhook_retry_base, s.webhook_retry_max)
        outcome = await asyncio.to_thread(
            store.failed,
            self.engine,
            batch,
            error,
            now,
            now + delay,
            s.webhook_retry_for,
            s.webhook_disable_after,
        )
        log.warning(
            "event=webhook_attempt_failed webhook=%d batch=%s attempt=%d retry_in=%.0f "
            "dead=%s error=%r",
            webhook_id,
            batch.id,
            batch.attempts + 1,
            delay,
            outcome.dead if outcome else "overtaken",
            error[:200],
        )
        if outcome is not None and outcome.disabled:
            log.error("event=webhook_disabled webhook=%d error=%r", webhook_id, error[:200])
        return False

    async def _post(self, url: str, secret: str, batch: Batch) -> str | None:
        """None on a 2xx, else what went wrong."""
        try:
            await asyncio.to_thread(check_url, url, self.settings.webhook_allow_private)
            stamp = int(time.time())
            body = body_of(batch, self.clock.now())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": batch.id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(secret, batch.id, stamp, body),
            }
            # The whole request within the timeout (httpx's bounds each phase alone): the
            # attempt's lease is twice the timeout, so no other dispatcher sends it meanwhile.
            r = await asyncio.wait_for(
                self._client.post(url, content=body, headers=headers),
                self.settings.webhook_timeout,
            )
        except ValidationError as e:
            return f"refused: {e}"
        except TimeoutError:
            return f"no answer within {self.settings.webhook_timeout:g} s"
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"[:500]
        if 200 <= r.status_code < 300:
            return None
        # The status only: a response body is the endpoint's, and is shown to API readers.
        return f"HTTP {r.status_code}"
