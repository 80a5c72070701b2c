"""A process's presence in the registry: take its slot, register, heartbeat, watch its host
peers, say goodbye or leave last words.

Restarts are recognised under any supervisor: the slot resolves from the environment
(identity.py), and a process that takes a slot whose previous holder certainly ended (its lock
was free, or its PID is gone on this host) records that end at once, lapses the dead holder's
leases so its batches resume now, and registers as the slot's new instance: a restart. Every
process also checks, about once a second, that its peers on the same host still run, so a
killed process is known dead within a second, not after missed heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine

from steadymail import __version__, identity, lastwords
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.store import changes, instances
from steadymail.store.db import is_sqlite

log = logging.getLogger("steadymail.presence")

# Settings that differ between processes of one deployment by design, not by a change.
_PER_PROCESS = {"slot", "health_port"}
# How far back a peer's heartbeat may be for the peer watch to still look at it.
_PEER_HORIZON = 600.0


def new_instance_id(service: str) -> str:
    """Unique per process start: `<service>-<host>-<pid>-<random>`."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def config_snapshot(settings: Settings) -> dict[str, str]:
    """A digest of each setting a process runs with: enough to tell which settings changed
    between two processes, and nothing to read back (database passwords and webhook tokens sit
    in plain strings, not only in the SecretStr fields)."""
    dumped = settings.model_dump(mode="json")
    return {k: _digest(v) for k, v in sorted(dumped.items()) if k not in _PER_PROCESS}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def gone_reason(pid: int) -> str:
    return (
        f"pid {pid} ended without last words (a signal such as SIGKILL, the OOM killer, "
        f"or a crash below Python)"
    )


def _end_predecessor(
    engine: Engine, ident: identity.Identity, instance_id: str, now: float
) -> instances.Instance | None:
    """The slot's previous holder; recorded as ended, its leases lapsed, when it certainly is:
    it ran on this host and held the very lock file this process now holds, or its PID is gone
    from this host's PID namespace. Anything less is left to missed heartbeats."""
    pred = instances.predecessor(engine, ident.slot, now)
    if pred is None or pred.stopped_at is not None or pred.host != socket.gethostname():
        return pred
    held_the_same_lock = ident.lock is not None and pred.lock == ident.lock
    certain = held_the_same_lock or (
        identity.same_pid_space(pred.proc) and identity.process_gone(pred.pid, pred.proc)
    )
    if certain:
        instances.record_end(
            engine,
            pred.instance_id,
            gone_reason(pred.pid),
            now,
            expire_leases=True,
            seen_by=instance_id,
        )
    return pred


def _note_deploy(
    engine: Engine,
    settings: Settings,
    service: str,
    pred: instances.Instance | None,
    config: dict[str, str],
    now: float,
) -> None:
    """A process running a version or configuration that the previous process of its slot (or,
    in a new slot such as a replaced pod, of its service) did not is a deploy."""
    if pred is None:
        return
    before = {"version": pred.version, "config": _digest(pred.config)}
    after = {"version": __version__, "config": _digest(config)}
    if pred.config is None:
        before["config"] = after["config"]  # a predecessor from before config was recorded
    if before == after:
        return
    last = changes.latest(engine, "deploy", service)
    if last is not None and last.after == after:
        return  # another process of the service already reported this deploy
    parts = []
    if before["version"] != after["version"]:
        parts.append(f"version {before['version']}→{after['version']}")
    old = pred.config or {}
    keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    if keys and before["config"] != after["config"]:
        parts.append("config " + ", ".join(keys[:8]) + (" …" if len(keys) > 8 else ""))
    with engine.begin() as conn:
        changes.add(
            conn,
            at=now,
            region=settings.region,
            kind="deploy",
            subject=service,
            before=before,
            after=after,
            by=f"{service} {pred.slot}",
            detail="; ".join(parts),
        )


def register_self_sync(
    engine: Engine, settings: Settings, service: str, instance_id: str, now: float
) -> identity.Identity:
    """Take a slot, end its dead predecessor, note a deploy, register. Returns the identity."""
    ident = identity.resolve(
        service, settings.region, settings.slot, settings.data_dir / "run" / "slots"
    )
    pred = _end_predecessor(engine, ident, instance_id, now)
    # In a new slot (a replaced pod, a new host) the service's latest process is the reference.
    prior = pred or instances.predecessor(engine, "", now, service=service)
    config = config_snapshot(settings)
    instances.register(
        engine,
        instance_id=instance_id,
        service=service,
        region=settings.region,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
        now=now,
        slot=ident.slot,
        proc=identity.process_key(),
        identity=ident.source,
        config=config,
        lock=ident.lock,
    )
    _note_deploy(engine, settings, service, prior, config, now)
    log.info(
        "event=registered service=%s instance=%s slot=%s identity=%s",
        service,
        instance_id,
        ident.slot,
        ident.source,
    )
    return ident


async def register_self(
    engine: Engine, settings: Settings, service: str, instance_id: str, now: float
) -> identity.Identity:
    """Announce this process in the registry (off the event loop)."""
    return await asyncio.to_thread(register_self_sync, engine, settings, service, instance_id, now)


class PeerWatch:
    """Finds processes of this host (same boot, same PID namespace) that ended without a word:
    records their end and lapses their leases, within a check interval of their death.

    The PIDs are checked on every call (a read of /proc, no database); the list of peers is
    read from the database only every ``refresh_every`` calls, since on SQLite every read takes
    the write lock. A peer that dies before it is on the list is found by its successor."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        instance_id: str,
        refresh_every: int = 10,
        frozen_writer_grace: float = 0.0,
    ) -> None:
        self._engine, self._clock, self._me = engine, clock, instance_id
        self._handled: set[str] = set()
        self._peers: list[instances.HostPeer] = []
        self._calls = 0
        self._refresh_every = refresh_every
        self._grace = frozen_writer_grace
        self._stopped_since: dict[int, float] = {}
        db = engine.url.database if is_sqlite(engine) else None
        self._sqlite = Path(db) if db and db != ":memory:" else None

    def kill_frozen_writer(self) -> int | None:
        """SQLite has one writer: a peer stopped (SIGSTOP) inside a write transaction holds
        every other process of the region until it resumes. Once it has been stopped holding
        the lock for the grace period, it is killed, as a crashed process would be: its lock
        goes with it, the supervisor restarts it, and `check` lapses its leases. Reads /proc
        only, never the database (which that peer holds). Returns the PID killed, if any."""
        if self._sqlite is None or self._grace <= 0:
            return None
        holder = identity.sqlite_writer_pid(self._sqlite)
        if holder is None or holder == os.getpid() or not self._is_peer(holder):
            self._stopped_since.clear()
            return None
        if not identity.stopped(holder):
            self._stopped_since.pop(holder, None)
            return None
        now = self._clock.now()
        since = self._stopped_since.setdefault(holder, now)
        if now - since < self._grace:
            return None
        log.error(
            "event=frozen_writer_killed pid=%d stopped_for=%.1f "
            "reason='stopped inside a SQLite write transaction: every writer waits on it'",
            holder,
            now - since,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, signal.SIGKILL)
        self._stopped_since.pop(holder, None)
        return holder

    def check(self) -> list[str]:
        """One look; returns the instances found gone now."""
        now = self._clock.now()
        if self._calls % self._refresh_every == 0:
            self._peers = [
                row
                for row in instances.on_host(
                    self._engine, socket.gethostname(), now - _PEER_HORIZON
                )
                if row.instance_id != self._me and identity.same_pid_space(row.proc)
            ]
        self._calls += 1
        found = []
        for row in self._peers:
            iid = row.instance_id
            if iid in self._handled:
                continue
            if identity.process_gone(row.pid, row.proc):
                self._handled.add(iid)
                instances.record_end(
                    self._engine,
                    iid,
                    gone_reason(row.pid),
                    now,
                    expire_leases=True,
                    seen_by=self._me,
                )
                found.append(iid)
                log.warning("event=peer_gone instance=%s pid=%s", iid, row.pid)
        return found

    def _is_peer(self, pid: int) -> bool:
        """On the peer list, or (started since the list was read: reading it again needs the
        lock a frozen peer may hold) a process of this host running steadymail."""
        return pid in {r.pid for r in self._peers} or identity.runs_steadymail(pid)

    async def run(self, interval: float) -> None:
        # The frozen-writer look runs on its own: `check` may wait on that very writer's lock.
        frozen = asyncio.create_task(self._frozen_loop(interval))
        try:
            while True:
                try:
                    await asyncio.to_thread(self.check)
                except Exception as e:
                    log.warning("event=peer_watch_failed instance=%s error=%r", self._me, str(e))
                await asyncio.sleep(interval)
        finally:
            frozen.cancel()

    async def _frozen_loop(self, interval: float) -> None:
        if self._sqlite is None or self._grace <= 0:
            return
        while True:
            try:
                self.kill_frozen_writer()
            except Exception as e:
                log.warning(
                    "event=frozen_writer_check_failed instance=%s error=%r", self._me, str(e)
                )
            await asyncio.sleep(interval / 4)


def watch_peers(
    engine: Engine, clock: Clock, settings: Settings, instance_id: str
) -> asyncio.Task[None]:
    """This process's `PeerWatch`, every ``peer_check_interval``: a task to cancel at exit."""
    watch = PeerWatch(
        engine, clock, instance_id, frozen_writer_grace=settings.resolved_frozen_writer_grace()
    )
    return asyncio.create_task(watch.run(settings.peer_check_interval))


def leave_last_words(engine: Engine, clock: Clock, instance_id: str, exc: BaseException) -> None:
    """Write down why this process is dying (synchronously: it may be gone a moment later), and
    lapse its leases: its batches need not wait for a successor or a lease TTL (fencing keeps
    anything it still writes from counting)."""
    try:
        instances.record_end(
            engine,
            instance_id,
            lastwords.describe(exc),
            clock.now(),
            last_words=lastwords.full(exc),
            expire_leases=True,
            seen_by="itself",
        )
        log.error("event=last_words instance=%s %s", instance_id, lastwords.full(exc))
    except Exception as e:  # the database may be what failed: say it in the log at least
        log.error("event=last_words_failed instance=%s error=%r", instance_id, str(e))


def leave_exit_note(engine: Engine, clock: Clock, instance_id: str, why: str) -> None:
    """Last words for a deliberate exit (fault injection): no exception, just the reason."""
    try:
        instances.record_end(
            engine, instance_id, why, clock.now(), last_words=why, seen_by="itself"
        )
    except Exception as e:
        log.error("event=exit_note_failed instance=%s error=%r", instance_id, str(e))


def arm_excepthook(engine: Engine, clock: Clock, instance_id: str) -> None:
    """Any uncaught exception in this process leaves last words before the process ends."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            leave_last_words(engine, clock, instance_id, exc)
        previous(kind, exc, tb)

    sys.excepthook = hook


class ServicePresence:
    """For processes without a lease loop of their own (api, control)."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings, service: str) -> None:
        self._engine, self._clock, self._settings, self._service = engine, clock, settings, service
        self.instance_id = new_instance_id(service)
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False

    async def start(self) -> None:
        await register_self(
            self._engine, self._settings, self._service, self.instance_id, self._clock.now()
        )
        arm_excepthook(self._engine, self._clock, self.instance_id)
        self.ready = True
        self._tasks = [
            asyncio.create_task(self._beat()),
            watch_peers(self._engine, self._clock, self._settings, self.instance_id),
        ]

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.resolved_heartbeat_interval())
            try:
                await asyncio.to_thread(
                    instances.heartbeat, self._engine, self.instance_id, self._clock.now()
                )
            except Exception as e:
                log.warning("event=heartbeat_failed service=%s error=%r", self._service, str(e))

    async def stop(self, reason: str) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await asyncio.to_thread(
                instances.stopped, self._engine, self.instance_id, reason, self._clock.now()
            )
        except Exception as e:  # the monitor then sees missed heartbeats instead of a stop
            log.warning("event=stop_not_recorded service=%s error=%r", self._service, str(e))
