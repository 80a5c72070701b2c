"""SMTP delivery through pooled, reused aiosmtplib connections to one or more relays.

Relays are tried in order; a relay whose connection fails is cooled down and the next takes
over. STARTTLS is used whenever a relay offers it (`starttls = "require"` refuses one that does
not; "off" skips it) and AUTH never crosses a plaintext link unless `allow_plaintext_auth`.
A connection that drops mid-conversation is discarded and the message retried on a fresh one,
up to `retries` times, before it is reported as a connection failure (the caller defers).
"""

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from steadymail.clock import Clock
from steadymail.config import RelaySettings
from steadymail.domain.delivery import Outcome, Verdict, classify_reply
from steadymail.sending.smtp_client import PipelinedSMTP
from steadymail.sending.throttle import TakeTokens, WindowThrottle

log = logging.getLogger("steadymail.transport")

_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


DAY = 86400.0


Client = aiosmtplib.SMTP | PipelinedSMTP


@functools.cache
def _local_hostname() -> str:
    return socket.getfqdn()


@dataclass
class _Relay:
    settings: RelaySettings
    throttle: WindowThrottle
    idle: list[Client]
    # The warm-up schedule's cap for the day, across the region (None: no schedule).
    daily: WindowThrottle | None = None
    down_until: float = 0.0
    # Seen to offer STARTTLS under a policy that takes it: its next connections go straight to
    # aiosmtplib instead of being opened twice (our client first, to read its EHLO).
    wants_tls: bool = False


class SmtpPool:
    """Delivers one message at a time per caller, reusing up to `size` connections per relay."""

    def __init__(
        self,
        relays: list[RelaySettings],
        *,
        size: int,
        timeout: float,
        retries: int,
        cooldown: float,
        clock: Clock,
        take: TakeTokens,
        on_transaction: Callable[[float, int], None] | None = None,
    ) -> None:
        if not relays:
            raise ValueError("at least one relay is required")
        self._relays = [
            _Relay(
                r,
                WindowThrottle(r.name, r.rate_per_second, take, clock),
                [],
                WindowThrottle(f"warmup:{r.name}", r.warmup_cap, take, clock, DAY)
                if r.warmup
                else None,
            )
            for r in relays
        ]
        self._size, self._timeout, self._retries = size, timeout, retries
        self._cooldown, self._clock = cooldown, clock
        self.connections_opened = 0
        # Told (seconds, reply code; 0 for none) after each SMTP transaction, for metrics.
        self._on_transaction = on_transaction

    def _pick(self, exclude: set[int]) -> tuple[int, _Relay]:
        now = self._clock.now()
        live = [(i, r) for i, r in enumerate(self._relays) if i not in exclude]
        for i, r in live:
            if r.down_until <= now:
                return i, r
        # Every relay is cooling down: try the one that went down first rather than give up.
        return min(live or list(enumerate(self._relays)), key=lambda p: p[1].down_until)

    async def _connect(self, relay: _Relay) -> Client:
        s = relay.settings
        if not s.use_tls and not s.username and s.starttls != "require" and not relay.wants_tls:
            # Our pipelined client, unless the relay offers STARTTLS and the policy takes it:
            # then aiosmtplib, which speaks TLS and AUTH.
            fast = PipelinedSMTP(s.host, s.port, self._timeout, _local_hostname())
            await fast.connect()
            if s.starttls == "off" or not fast.supports("STARTTLS"):
                self.connections_opened += 1
                return fast
            relay.wants_tls = True
            await _quit(fast)
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=self._timeout,
            use_tls=s.use_tls,
            # STARTTLS is decided below, where "require" can refuse with a clear reason.
            start_tls=False,
            validate_certs=s.validate_certs,
        )
        await client.connect()
        try:
            await _secure(client, s)
        except BaseException:
            client.close()
            raise
        self.connections_opened += 1
        return client

    async def send(
        self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False
    ) -> Verdict:
        """Deliver `data`; the verdict says sent, deferred, bounced or connection failure."""
        tried: set[int] = set()
        capped: set[int] = set()
        last = Verdict(Outcome.CONNECTION, 0, "no relay reachable")
        attempt = 0
        while attempt <= self._retries:
            if len(capped) == len(self._relays):
                return self._held(capped)
            if len(tried | capped) == len(self._relays):
                tried.clear()
            index, relay = self._pick(tried | capped)
            if relay.daily is not None and not await relay.daily.try_acquire():
                # Its warm-up cap for the day is spent: the next relay takes the message.
                capped.add(index)
                continue
            attempt += 1
            await relay.throttle.acquire()
            try:
                client = relay.idle.pop() if relay.idle else await self._connect(relay)
            except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as e:
                # A refused greeting, STARTTLS or login is the relay's failure, not the message's.
                relay.down_until = self._clock.now() + self._cooldown
                tried.add(index)
                last = Verdict(Outcome.CONNECTION, 0, f"{relay.settings.name}: {e}")
                log.warning("event=relay_down relay=%s error=%r", relay.settings.name, str(e))
                continue
            started = time.perf_counter()
            verdict = await self._converse(client, sender, recipient, data, smtputf8)
            if self._on_transaction:
                self._on_transaction(time.perf_counter() - started, verdict.code)
            if verdict.outcome == Outcome.CONNECTION:
                client.close()
                tried.add(index)
                last = verdict
                continue
            if len(relay.idle) < self._size:
                relay.idle.append(client)
            else:
                await _quit(client)
            return verdict
        return last

    def _held(self, capped: set[int]) -> Verdict:
        """Every relay's warm-up cap is spent: held (not an attempt) until the next day."""
        now = self._clock.now()
        until = min(
            r.daily.next_window_at(now)
            for i, r in enumerate(self._relays)
            if r.daily and i in capped
        )
        names = ", ".join(r.settings.name for r in self._relays)
        return Verdict(
            Outcome.HELD, 0, f"warm-up: the day's cap is spent on {names}", retry_at=until
        )

    async def _converse(
        self, client: Client, sender: str, recipient: str, data: bytes, smtputf8: bool
    ) -> Verdict:
        options = ["SMTPUTF8"] if smtputf8 else []
        try:
            _errors, reply = await client.sendmail(sender, [recipient], data, mail_options=options)
            return classify_reply(250, reply, at_rcpt=False)
        except aiosmtplib.SMTPRecipientsRefused as e:
            first = e.recipients[0]
            return classify_reply(first.code, first.message, at_rcpt=True)
        except aiosmtplib.SMTPResponseException as e:
            return classify_reply(e.code, e.message, at_rcpt=False)
        except _CONNECTION_ERRORS as e:
            return Verdict(Outcome.CONNECTION, 0, f"connection lost: {e!r}")
        except aiosmtplib.SMTPNotSupported as e:
            # e.g. an internationalised address to a relay without SMTPUTF8: this relay can
            # never take it. Not the recipient's fault, so no suppression.
            return Verdict(Outcome.BOUNCE, 0, f"relay cannot carry this message: {e}")
        except aiosmtplib.SMTPException as e:
            # Anything else the client raises leaves the session in an unknown state: a new
            # connection, another relay, then a deferral — never an escape that fails the batch.
            return Verdict(Outcome.CONNECTION, 0, f"SMTP error: {e!r}")

    async def close(self) -> None:
        for relay in self._relays:
            while relay.idle:
                await _quit(relay.idle.pop())


class RelayRefused(ConnectionError):
    """The relay does not meet our TLS policy (STARTTLS required, or AUTH without TLS)."""


async def _secure(client: aiosmtplib.SMTP, s: RelaySettings) -> None:
    """STARTTLS as `s.starttls` says, then AUTH, never AUTH over plaintext unless allowed."""
    if not s.use_tls and s.starttls != "off":
        await client.ehlo()
        if client.supports_extension("starttls"):
            await client.starttls()
        elif s.starttls == "require":
            raise RelayRefused(f"{s.name}: STARTTLS is required but the relay does not offer it")
    if s.username and s.password is not None:
        encrypted = s.use_tls or client.get_transport_info("sslcontext") is not None
        if not encrypted and not s.allow_plaintext_auth:
            raise RelayRefused(
                f"{s.name}: refusing AUTH over a plaintext connection "
                "(enable STARTTLS or set allow_plaintext_auth)"
            )
        await client.login(s.username, s.password.get_secret_value())


async def _quit(client: Client) -> None:
    try:
        await client.quit()
    except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException):
        # The relay hung up or refused QUIT: the connection is done with all the same.
        client.close()
