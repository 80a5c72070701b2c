"""The worker: claim a batch, deliver it window by window under its lease, release it.

Per window of `inflight_window` messages: mark them in flight (fenced), deliver them, then
checkpoint their results (fenced). A worker killed at any moment therefore leaves at most one
window per batch whose fate is unknown; the next holder re-sends exactly those and counts them.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.delivery import (
    BackoffPolicy,
    Outcome,
    Verdict,
    deferral_expired,
    next_attempt_delay,
)
from steadymail.domain.states import MessageState, SendState
from steadymail.errors import NotFound, ValidationError
from steadymail.metrics import Metrics, SeriesFlusher
from steadymail.presence import (
    leave_exit_note,
    leave_last_words,
    new_instance_id,
    register_self,
    watch_peers,
)
from steadymail.probes import serve_health
from steadymail.sending.checkpointer import Checkpointer
from steadymail.sending.compose import Composed, Composer, SendInfo
from steadymail.sending.deadline import Running, within
from steadymail.sending.faults import Faults
from steadymail.sending.flag_view import FlagView
from steadymail.sending.gate import SuspectGate
from steadymail.sending.heartbeat import Heartbeat
from steadymail.sending.render import compile_template
from steadymail.sending.scheduler import Scheduler
from steadymail.sending.throttle import DomainThrottles
from steadymail.sending.transport import SmtpPool
from steadymail.store import events, instances, queue, ratelimit, sends, templates
from steadymail.store.queue import Checkpoint, Claim, QueuedMessage, Result
from steadymail.store.sends import Send

log = logging.getLogger("steadymail.worker")
DKIM_RELOAD_SECONDS = 30.0


@dataclass
class WorkerStats:
    batches: int = 0
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    reclaims: int = 0
    at_risk: int = 0


def rescue_width(concurrency: int) -> int:
    """How many lapsed leases one worker takes over side by side: every batch of a dead peer
    configured alike that was not itself a rescue, and one more. A worker that dies holds at
    most `concurrency + rescue_width(concurrency)` batches, each with at most one window in
    flight: the bound on what one death can send twice."""
    return concurrency + 1


class Worker:
    """One worker process's sending loop; `run` returns after a graceful stop."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        pool: SmtpPool,
        composer: Composer,
        *,
        instance_id: str | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        flags: FlagView | None = None,
        faults: Faults | None = None,
        reload_dkim: Callable[[], None] | None = None,
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.pool, self.composer = pool, composer
        self.domains = DomainThrottles(
            settings.domain_rate_limits, partial(ratelimit.take, engine), clock
        )
        self.instance_id = instance_id or new_instance_id("worker")
        self.rng = rng or random.Random()
        self.stats = WorkerStats()
        self.checkpointer = Checkpointer(
            engine, clock, settings.checkpoint_interval, self.instance_id, settings.lease_ttl
        )
        self.backoff = BackoffPolicy(
            settings.defer_base, settings.defer_max, settings.defer_max_age, settings.defer_jitter
        )
        self._stopping = asyncio.Event()
        self._sends: dict[int, tuple[float, SendInfo, SendState]] = {}
        self._gate = SuspectGate()
        self.metrics = metrics or Metrics(settings.region, settings.metrics_interval)
        self._flusher = SeriesFlusher(self.metrics, engine, clock, self.instance_id)
        self.flags = flags or FlagView(engine)
        self.faults = faults or Faults(settings, self.flags, clock)
        # Re-reads the signing keys: a sending domain's key found published (or retired)
        # signs (or stops) within DKIM_RELOAD_SECONDS, without a restart.
        self._reload_dkim = reload_dkim
        self.heartbeat = Heartbeat(
            engine,
            clock,
            self.checkpointer,
            self.flags,
            self.faults,
            self.instance_id,
            settings.lease_ttl,
            settings.resolved_heartbeat_interval(),
        )
        self.slot = ""

    def stop(self) -> None:
        """Graceful stop: finish the window in hand, checkpoint, release leases, exit."""
        self._stopping.set()

    async def run(self) -> None:
        now = self.clock.now()
        self.faults.start(self.engine, now)
        await self.flags.load()
        ident = await register_self(self.engine, self.settings, "worker", self.instance_id, now)
        self.slot = ident.slot
        self.faults.before_exit = partial(
            leave_exit_note, self.engine, self.clock, self.instance_id
        )
        log.info(
            "event=worker_started instance=%s slot=%s concurrency=%d",
            self.instance_id,
            ident.slot,
            self.settings.worker_concurrency,
        )
        self.heartbeat.start(now)
        helpers = [
            asyncio.create_task(self.checkpointer.run()),
            asyncio.create_task(self.heartbeat.run()),
            asyncio.create_task(self._flusher.run()),
            asyncio.create_task(Scheduler(self.engine, self.settings, self.clock).run()),
            watch_peers(self.engine, self.clock, self.settings, self.instance_id),
        ]
        if self._reload_dkim is not None:
            helpers.append(asyncio.create_task(self._dkim_keys(self._reload_dkim)))
        # Ready while its heartbeats go through and it is not stopping.
        probes = await serve_health(
            self.settings, lambda: not self._stopping.is_set() and self.heartbeat.valid()
        )
        slots = [asyncio.create_task(self._slot()) for _ in range(self.settings.worker_concurrency)]
        slots.append(asyncio.create_task(self._rescuer()))
        died: BaseException | None = None
        try:
            await asyncio.gather(*slots)
        except Exception as e:
            died = e
            raise
        except BaseException as e:
            # An injected crash (or anything else that is not an Exception) ends us too.
            if not isinstance(e, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                died = e
            raise
        finally:
            for task in [*helpers, *slots]:
                task.cancel()
            if probes is not None:
                probes.close()
            if died is not None:
                # Last words first: the restart alert shows them, and nothing below may run.
                await asyncio.to_thread(
                    leave_last_words, self.engine, self.clock, self.instance_id, died
                )
            else:
                await self._flusher.flush(final=True)
                await self.pool.close()
                await asyncio.to_thread(
                    instances.stopped, self.engine, self.instance_id, "graceful", self.clock.now()
                )
                log.info(
                    "event=worker_stopped instance=%s sent=%d", self.instance_id, self.stats.sent
                )

    async def _slot(self) -> None:
        while not self._stopping.is_set():
            claim = await self._claim(rescue=False)
            if claim is None:
                await self._idle()
            else:
                await self._handle(claim)

    async def _rescuer(self) -> None:
        """Take over lapsed leases the moment they lapse, even while every ordinary slot is busy.

        Up to `rescue_width` takeovers run side by side, each its own task: a dead peer's
        batches resume together within a lease TTL and a poll, not one after another (one
        rescue at a time left a peer's second batch waiting for the first to finish). A task
        group holds them: a crash in one (a BaseException) cancels the rest and this loop at
        once, even mid-claim, and is raised as itself, so the worker dies as it would in an
        ordinary slot, its last words naming the crash's frame; a graceful stop waits for each
        to end after its window.
        """
        room = asyncio.Semaphore(rescue_width(self.settings.worker_concurrency))
        try:
            async with asyncio.TaskGroup() as takeovers:
                while True:
                    await room.acquire()
                    if self._stopping.is_set():
                        room.release()
                        break
                    claim = await self._claim(rescue=True)
                    if claim is None:
                        room.release()
                        await self._idle()
                        continue
                    task = takeovers.create_task(self._handle(claim))
                    task.add_done_callback(lambda _: room.release())
                    # A dead peer's other leases lapsed with this one: look again at once.
        except BaseExceptionGroup as group:
            # _handle catches every Exception: what is left is a crash; raise the first as is.
            raise group.exceptions[0] from None

    async def _claim(self, *, rescue: bool) -> Claim | None:
        """A batch to work on (only a lapsed lease for a rescue), or None; errors are logged."""
        self.faults.at("claiming")
        started = perf_counter()
        try:
            claim = await asyncio.to_thread(
                partial(queue.claim_batch, expired_only=rescue),
                self.engine,
                self.instance_id,
                self.settings.lease_ttl,
                self.clock.now(),
            )
        except Exception as e:
            log.warning(
                "event=claim_failed instance=%s rescue=%s error=%r",
                self.instance_id,
                rescue,
                str(e),
            )
            return None
        if claim is not None:
            now = self.clock.now()
            self.metrics.observe("claim", perf_counter() - started, now)
            self.metrics.claim(claim.reclaimed, now)
            self.faults.at("claimed")
        return claim

    async def _handle(self, claim: Claim) -> None:
        try:
            await self._process(claim)
        except Exception as e:
            # A database error mid-batch (PostgreSQL ending a session that sat frozen in a
            # transaction, a failover): the batch goes back, the worker goes on.
            log.error("event=batch_failed batch=%d error=%r", claim.batch_id, str(e))
            await self._give_back(claim)

    async def _give_back(self, claim: Claim) -> None:
        """Lapse a batch this worker cannot finish, so another claim (maybe ours) resumes it at
        once; were the lease left alone, the heartbeat would keep it held and the batch idle."""
        try:
            await asyncio.to_thread(queue.lapse_claim, self.engine, claim, self.clock.now())
        except Exception as e:
            # The database is unreachable: so are our heartbeats, and the lease lapses anyway.
            log.warning("event=give_back_failed batch=%d error=%r", claim.batch_id, str(e))

    async def _idle(self) -> None:
        self.faults.at("idle")
        delay = self.settings.poll_interval * (0.5 + self.rng.random())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _process(self, claim: Claim) -> None:
        self.stats.batches += 1
        msgs = await asyncio.to_thread(queue.load_messages, self.engine, claim, self.clock.now())
        self.faults.at("loaded")
        if claim.reclaimed:
            await self._note_reclaim(claim, msgs)
        try:
            send = await self._send_info(claim.send_id)
        except (NotFound, ValidationError) as e:
            log.error("event=send_unusable send=%d error=%r", claim.send_id, str(e))
            send = None
        for window in self._windows(msgs):
            if self._stopping.is_set() or not await self._may_continue(claim):
                break
            gate = self._gate.alone() if window[0].crashes else self._gate.ordinary()
            async with gate:
                if not await self._window(claim, send, window):
                    return self._lost(claim)
        if not await asyncio.to_thread(queue.release_batch, self.engine, claim, self.clock.now()):
            self._lost(claim)
        self.faults.at("released")

    async def _window(
        self, claim: Claim, send: SendInfo | None, window: list[QueuedMessage]
    ) -> bool:
        """Mark in flight, deliver, checkpoint; False if the lease was lost on the way."""
        if not await self.checkpointer.submit(
            Checkpoint(claim, inflight_ids=[m.id for m in window])
        ):
            return False
        self.faults.at("window")
        results = [await self._deliver(send, m) for m in window]
        self.faults.at("delivered")
        started = perf_counter()
        ok = await self.checkpointer.submit(Checkpoint(claim, results=results))
        now = self.clock.now()
        self.metrics.observe("checkpoint", perf_counter() - started, now)
        for r in results:
            self.metrics.outcome(r.state.value, now)
        return ok

    def _windows(self, msgs: list[QueuedMessage]) -> list[list[QueuedMessage]]:
        """Messages that were in flight when a holder died go alone, first: if one of them kills
        every worker that sends it, only it accumulates crashes and gets quarantined."""
        suspects = [[m] for m in msgs if m.crashes]
        rest = [m for m in msgs if not m.crashes]
        w = self.settings.inflight_window
        return suspects + [rest[i : i + w] for i in range(0, len(rest), w)]

    async def _note_reclaim(self, claim: Claim, msgs: list[QueuedMessage]) -> None:
        at_risk = sum(1 for m in msgs if m.at_risk)
        self.stats.reclaims += 1
        self.stats.at_risk += at_risk
        log.info(
            "event=lease_reclaimed batch=%d send=%d epoch=%d at_risk=%d",
            claim.batch_id,
            claim.send_id,
            claim.epoch,
            at_risk,
        )
        await self._platform_event(
            "lease_reclaimed",
            f"send:{claim.send_id}",
            {
                "batch": claim.batch_id,
                "send": claim.send_id,
                "epoch": claim.epoch,
                "at_risk": at_risk,
                "by": self.instance_id,
            },
        )

    async def _platform_event(self, kind: str, subject: str, detail: dict[str, object]) -> None:
        """Tell the monitor (platform_events): a reclaim, a quarantine."""
        await asyncio.to_thread(
            events.append,
            self.engine,
            region=self.settings.region,
            kind=kind,
            subject=subject,
            detail=detail,
            now=self.clock.now(),
        )

    def _lost(self, claim: Claim) -> None:
        log.warning(
            "event=lease_lost batch=%d send=%d epoch=%d", claim.batch_id, claim.send_id, claim.epoch
        )

    async def _may_continue(self, claim: Claim) -> bool:
        if not self.heartbeat.valid():
            # Heartbeats have not gone through for a whole TTL: our lease may already be gone.
            return False
        _, _, state = await self._cached_send(claim.send_id)
        return state == SendState.RUNNING

    async def _dkim_keys(self, reload: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(DKIM_RELOAD_SECONDS)
            try:
                await asyncio.to_thread(reload)
            except Exception as e:  # a database hiccup: the keys in hand keep signing
                log.error("event=dkim_reload_failed error=%r", str(e)[:300])

    async def _cached_send(self, send_id: int) -> tuple[float, SendInfo, SendState]:
        entry = self._sends.get(send_id)
        now = self.clock.now()
        if entry is None or now - entry[0] > 0.5:
            row = await asyncio.to_thread(sends.get_send, self.engine, send_id)
            info = entry[1] if entry else await asyncio.to_thread(self._load_send_info, row)
            entry = (now, info, row.state)
            self._sends[send_id] = entry
        return entry

    async def _send_info(self, send_id: int) -> SendInfo:
        return (await self._cached_send(send_id))[1]

    def _load_send_info(self, send: Send) -> SendInfo:
        template = None
        if send.template_id is not None:
            t = templates.get_template(self.engine, send.template_id)
            template = compile_template(t.subject, t.html, t.text)
        return SendInfo(send.id, send.kind, send.from_addr, template, send.list_id)

    async def _quarantine(self, m: QueuedMessage, first: float) -> Result:
        why = f"{m.crashes} workers died while sending it"
        log.error("event=message_quarantined message=%d crashes=%d", m.id, m.crashes)
        await self._platform_event(
            "message_quarantined",
            f"message:{m.id}",
            {"message": m.id, "email": m.email, "crashes": m.crashes, "reason": why},
        )
        return Result(m.id, MessageState.QUARANTINED, m.attempts, first, error=why)

    async def _deliver(self, send: SendInfo | None, m: QueuedMessage) -> Result:
        now = self.clock.now()
        first = m.first_attempt_at or now
        attempts = m.attempts + 1
        if m.suppressed:
            return Result(m.id, MessageState.SUPPRESSED, m.attempts, first, error="suppressed")
        if m.crashes >= self.settings.quarantine_after:
            return await self._quarantine(m, first)
        self.faults.sending_to(m.email)
        if send is None:
            return Result(m.id, MessageState.FAILED, attempts, first, error="send is unusable")
        budget = self.composer.deadline
        work = partial(self.composer.compose, send, m.id, m.email, m.attributes, m.payload, now)
        try:
            # Off the event loop (heartbeats keep beating) and stopped at the deadline.
            composed = await _composed_within(budget, work)
        except Exception as e:
            # Any failure to build one message is that message's. (The rewriter drill's crash
            # is a BaseException, and still ends the worker.)
            self.stats.failed += 1
            if isinstance(e, ValidationError):
                reason = str(e)
            elif isinstance(e, TimeoutError):
                reason = f"composing the message did not stop within {budget + 1.0:g}s"
            else:
                reason = f"{type(e).__name__}: {e}"
            log.warning("event=compose_failed message=%d error=%r", m.id, reason[:200])
            return Result(m.id, MessageState.FAILED, attempts, first, error=reason[:500])
        self.composer.record(composed, now)
        try:
            await self.domains.acquire(composed.recipient)
            verdict = await self.pool.send(
                composed.sender, composed.recipient, composed.data, smtputf8=composed.smtputf8
            )
        except Exception as e:
            # A fault below the SMTP client (the throttle's database call, a bug): this
            # message is deferred like any transient failure; the window's others go on.
            log.error("event=delivery_error message=%d error=%r", m.id, str(e))
            verdict = Verdict(Outcome.DEFER, 0, f"delivery error: {type(e).__name__}: {e}")
        done = self.clock.now()
        if verdict.outcome == Outcome.HELD:
            # The platform's own limit, not a delivery attempt: neither counted nor aged.
            return Result(
                m.id,
                MessageState.DEFERRED,
                m.attempts,
                m.first_attempt_at,
                next_attempt_at=max(verdict.retry_at, done),
                error=verdict.detail[:500],
            )
        if verdict.outcome == Outcome.SENT:
            self.stats.sent += 1
            return Result(
                m.id, MessageState.SENT, attempts, first, sent_at=done, smtp_code=verdict.code
            )
        if verdict.outcome == Outcome.BOUNCE:
            self.stats.bounced += 1
            return Result(
                m.id,
                MessageState.BOUNCED,
                attempts,
                first,
                smtp_code=verdict.code,
                error=verdict.detail[:500],
                suppress_email=m.email.lower() if verdict.hard else None,
            )
        if deferral_expired(self.backoff, first, done):
            self.stats.failed += 1
            return Result(
                m.id,
                MessageState.FAILED,
                attempts,
                first,
                smtp_code=verdict.code or None,
                error=f"expired after {attempts} attempts: {verdict.detail}"[:500],
            )
        self.stats.deferred += 1
        delay = next_attempt_delay(self.backoff, attempts, self.rng)
        return Result(
            m.id,
            MessageState.DEFERRED,
            attempts,
            first,
            next_attempt_at=done + delay,
            smtp_code=verdict.code or None,
            error=verdict.detail[:500],
        )


async def _composed_within(budget: float, work: Callable[[], Composed]) -> Composed:
    """``work()`` in a thread, stopped once it used ``budget`` CPU seconds (deadline.within).
    A thread stuck inside one C call cannot be stopped: past ``budget + 1`` CPU seconds the
    message fails anyway (TimeoutError) and the thread is left to finish. Both bounds count CPU
    time, so a worker frozen or starved mid-message fails nothing when it runs again."""
    running = Running()
    task = asyncio.ensure_future(
        asyncio.to_thread(within, budget, "composing the message", work, running)
    )
    while True:
        done, _ = await asyncio.wait({task}, timeout=budget + 1.0)
        if done:
            return task.result()
        if running.used() >= budget + 1.0:
            raise TimeoutError
