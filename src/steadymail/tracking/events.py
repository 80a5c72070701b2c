"""Event recording off the request path: appended in memory, written in groups, flushed on stop."""

import asyncio
import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import tracking as store
from steadymail.tracking.classify import classify_click, classify_open
from steadymail.tracking.tokens import Kind, TokenData

log = logging.getLogger("steadymail.tracking")

_KIND_NAMES = {Kind.CLICK: "click", Kind.OPEN: "open", Kind.UNSUBSCRIBE: "unsubscribe"}


@dataclass(frozen=True)
class _Pending:
    data: TokenData
    at: float
    method: str
    user_agent: str
    ip_hash: str


class EventRecorder:
    """`record` costs an append; `run` writes every `interval`; `close` writes the rest."""

    def __init__(
        self, engine: Engine, clock: Clock, ip_key: bytes, scanner_window: float, interval: float
    ) -> None:
        self._engine, self._clock, self._ip_key = engine, clock, ip_key
        self._window, self._interval = scanner_window, interval
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self.written = 0

    def record(self, data: TokenData, method: str, user_agent: str, ip: str) -> None:
        ip_hash = hmac.new(self._ip_key, ip.encode(), hashlib.sha256).hexdigest() if ip else ""
        item = _Pending(data, self._clock.now(), method, user_agent[:500], ip_hash)
        with self._lock:
            self._pending.append(item)

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            rows = self._rows(batch)
            store.insert_events(self._engine, rows)
        except Exception:
            with self._lock:  # keep them for the next try rather than lose them
                self._pending[:0] = batch
            raise
        self.written += len(rows)
        return len(rows)

    def _rows(self, batch: list[_Pending]) -> list[dict[str, object]]:
        clicks = [p.data.message_id for p in batch if p.data.kind == Kind.CLICK]
        sent = store.sent_times(self._engine, sorted(set(clicks)))
        rows = []
        for p in batch:
            if p.data.kind == Kind.CLICK:
                sent_at = sent.get(p.data.message_id)
                machine, reason = classify_click(
                    p.method,
                    p.user_agent,
                    None if sent_at is None else p.at - sent_at,
                    self._window,
                )
            elif p.data.kind == Kind.OPEN:
                machine, reason = classify_open(p.user_agent)
            else:
                machine, reason = False, ""
            rows.append(
                {
                    "kind": _KIND_NAMES[p.data.kind],
                    "send_id": p.data.send_id,
                    "message_id": p.data.message_id,
                    "link": p.data.link,
                    "url": p.data.url,
                    "at": p.at,
                    "method": p.method,
                    "user_agent": p.user_agent,
                    "ip_hash": p.ip_hash,
                    "machine": int(machine),
                    "reason": reason,
                }
            )
        return rows

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.flush)
            except Exception as e:
                log.error("event=tracking_flush_failed error=%r", str(e))

    async def close(self) -> None:
        await asyncio.to_thread(self.flush)
