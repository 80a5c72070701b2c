"""Event webhooks: endpoints, the durable outbox, batches and the dispatcher's read cursors.

The outbox invariants:
- an event of the message log (`message_events`, `tracking_events`) committed after a webhook
  was created becomes exactly one `pending` delivery for it, if the webhook takes its type:
  the fan-out and the cursor move in one transaction, under the cursor rows' lock, and ranges
  of ids skipped because their transaction had not committed yet are read again (`gaps`) until
  they appear or are older than `gap_wait` (an hour);
- a webhook has at most one `open` batch; its deliveries are `batched`; a new batch takes the
  oldest `pending` ones only when none is open, so a webhook's events, and each message's,
  arrive in the order they happened;
- an attempt is taken by moving the batch's `next_attempt_at` past the request's deadline under
  a condition on its old value: one dispatcher sends it; a dispatcher that died mid-request
  leaves it due again at that deadline (at least once, never lost);
- a batch is `delivered` on a 2xx, else retried with backoff until `retry_for` after it was
  formed, then `dead` (kept, and replayable); a webhook failing for `disable_after` is disabled.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from steadymail.domain.webhooks import EVENT_OF_KIND
from steadymail.errors import NotFound
from steadymail.store.db import is_sqlite
from steadymail.store.message_log import prune_table
from steadymail.store.records import JsonObject
from steadymail.store.schema import (
    message_events,
    messages,
    tracking_events,
    webhook_batches,
    webhook_cursors,
    webhook_deliveries,
    webhooks,
)

# Event sources: (cursor name, table, event id prefix).
SOURCES = (("message_events", message_events, "me"), ("tracking_events", tracking_events, "te"))
# Ranges of skipped ids kept at most, and how long each is read again: a transaction that took
# its ids earlier commits later (a campaign of a million messages starting takes a while); one
# older than this was rolled back (a sequence also skips ids that never come).
MAX_GAPS = 10000
GAP_WAIT = 3600.0


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str
    created_at: float
    failing_since: float | None
    last_success_at: float | None
    last_error: str


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    webhook_id: int
    attempts: int
    created_at: float
    events: list[JsonObject]
    # The `next_attempt_at` this attempt set: its lease; its outcome is written only while the
    # batch still carries it (another dispatcher took a lapsed attempt over otherwise).
    lease: float = 0.0


@dataclass(frozen=True, slots=True)
class Failed:
    """What a failed attempt led to."""

    dead: bool
    disabled: bool
    next_attempt_at: float


def _webhook(r: Any) -> Webhook:
    return Webhook(
        int(r.id),
        r.url,
        list(r.events),
        r.description,
        bool(r.enabled),
        r.disabled_reason,
        float(r.created_at),
        r.failing_since,
        r.last_success_at,
        r.last_error,
    )


def create(
    engine: Engine, url: str, events: list[str], secret: str, description: str, now: float
) -> int:
    """A webhook taking `events` committed from now on: the events after the read cursors'
    positions, taken under their lock (the fan-out holds it while it reads, so an event is
    either before a webhook or after it, never half)."""
    with engine.begin() as conn:
        # The cursors' locks first: two webhooks created at once must not both be "the first".
        cursors = {name: _cursor(conn, name, table) for name, table, _ in SOURCES}
        first = conn.execute(select(func.count()).select_from(webhooks)).scalar_one() == 0
        starts = {}
        for name, table, _ in SOURCES:
            position = cursors[name][0]
            if first:
                # While there was no webhook the fan-out read nothing: start at the log's end.
                position = int(
                    conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
                )
                conn.execute(
                    update(webhook_cursors)
                    .where(webhook_cursors.c.source == name)
                    .values(position=position, gaps=[])
                )
            starts[name] = position
        return int(
            conn.execute(
                insert(webhooks)
                .values(
                    url=url,
                    events=events,
                    secret=secret,
                    description=description,
                    created_at=now,
                    starts=starts,
                )
                .returning(webhooks.c.id)
            ).scalar_one()
        )


def listing(engine: Engine) -> list[Webhook]:
    with engine.connect() as conn:
        return [_webhook(r) for r in conn.execute(select(webhooks).order_by(webhooks.c.id))]


def get(engine: Engine, webhook_id: int) -> Webhook:
    return target(engine, webhook_id)[0]


def target(engine: Engine, webhook_id: int) -> tuple[Webhook, str]:
    """The webhook and its secret (for signing only)."""
    with engine.connect() as conn:
        r = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if r is None:
        raise NotFound(f"no webhook {webhook_id}")
    return _webhook(r), str(r.secret)


def set_enabled(engine: Engine, webhook_id: int, enabled: bool, reason: str) -> None:
    """Enable (failures forgotten, its open batch due at once) or disable with a reason."""
    get(engine, webhook_id)
    with engine.begin() as conn:
        values: dict[str, object] = {"enabled": int(enabled), "disabled_reason": reason}
        if enabled:
            values |= {"failing_since": None, "disabled_reason": ""}
            conn.execute(
                update(webhook_batches)
                .where(
                    webhook_batches.c.webhook_id == webhook_id, webhook_batches.c.state == "open"
                )
                .values(next_attempt_at=0.0)
            )
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))


def remove(engine: Engine, webhook_id: int) -> None:
    get(engine, webhook_id)
    with engine.begin() as conn:
        conn.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        conn.execute(delete(webhook_batches).where(webhook_batches.c.webhook_id == webhook_id))
        conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


def counts(engine: Engine, webhook_id: int) -> dict[str, int]:
    """Deliveries by state: pending, batched, delivered, dead."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(webhook_deliveries.c.state, func.count())
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .group_by(webhook_deliveries.c.state)
        )
        found = {str(s): int(n) for s, n in rows}
    return {s: found.get(s, 0) for s in ("pending", "batched", "delivered", "dead")}


def _cursor(conn: Connection, name: str, table: Any) -> tuple[int, list[list[float]]]:
    """The cursor of a source, locked; created at the table's end if it never ran."""
    q = select(webhook_cursors.c.position, webhook_cursors.c.gaps).where(
        webhook_cursors.c.source == name
    )
    if not is_sqlite(conn):
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is not None:
        return int(row.position), [list(g) for g in row.gaps]
    end = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())
    conn.execute(insert(webhook_cursors).values(source=name, position=end, gaps=[]))
    return end, []


def fan_out(engine: Engine, now: float, limit: int = 5000, gap_wait: float = GAP_WAIT) -> int:
    """Turn newly committed events into pending deliveries; returns how many deliveries."""
    made = 0
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(webhooks)).scalar_one() == 0:
            return 0  # nobody to deliver to; the first webhook moves the cursors
        cursors = {name: _cursor(conn, name, table) for name, table, _ in SOURCES}
        # Read under the cursors' lock, which creating a webhook takes too.
        hooks = [
            (int(r.id), set(r.events), dict(r.starts))
            for r in conn.execute(select(webhooks.c.id, webhooks.c.events, webhooks.c.starts))
        ]
        for name, table, prefix in SOURCES:
            position, gaps = cursors[name]
            rows, top, kept = _read(conn, table, position, gaps, limit, now, gap_wait)
            conn.execute(
                update(webhook_cursors)
                .where(webhook_cursors.c.source == name)
                .values(position=top, gaps=kept)
            )
            out = []
            for r in rows:
                event = _event(prefix, r)
                for hook_id, types, starts in hooks:
                    if event["type"] in types and int(r.id) > int(starts.get(name, 0)):
                        out.append(
                            {
                                "webhook_id": hook_id,
                                "event_id": event["id"],
                                "message_id": r.message_id,
                                "at": r.at,
                                "payload": event,
                                "state": "pending",
                            }
                        )
            if out:
                conn.execute(insert(webhook_deliveries), out)
                made += len(out)
    return made


def _read(
    conn: Connection,
    table: Any,
    position: int,
    gaps: list[list[float]],
    limit: int,
    now: float,
    gap_wait: float,
) -> tuple[list[Any], int, list[list[float]]]:
    """The events past `position` and those that appeared in the ranges of ids passed while
    missing; the new position; the ranges still missing ([first id, last id, since])."""
    base = _events_of(table)
    kept: list[list[float]] = []
    fresh = list(conn.execute(base.where(table.c.id > position).order_by(table.c.id).limit(limit)))
    top = _walk(fresh, position, kept, now)
    late: list[Any] = []
    for gap in gaps:
        lo, hi, since = int(gap[0]), int(gap[1]), float(gap[2])
        if now - since >= gap_wait:
            continue  # a transaction that old was rolled back (or never will commit here)
        got = list(
            conn.execute(base.where(table.c.id.between(lo, hi)).order_by(table.c.id).limit(limit))
        )
        last = _walk(got, lo - 1, kept, since)
        if last < hi:
            kept.append([last + 1, hi, since])  # not seen yet (or past this pass's limit)
        late += got
    rows = sorted(fresh + late, key=lambda r: (float(r.at), int(r.id)))
    return rows, top, sorted(kept)[-MAX_GAPS:]


def _walk(rows: list[Any], start: int, missing: list[list[float]], since: float) -> int:
    """Add to `missing` the ids skipped between `start` and the rows' ids (in id order); the
    last id walked."""
    prev = start
    for r in rows:
        i = int(r.id)
        if i > prev + 1:
            missing.append([prev + 1, i - 1, since])
        prev = i
    return prev


def _events_of(table: Any) -> Any:
    """A source's events with their recipient (and what the payload says of each kind)."""
    cols = [
        table.c.id,
        table.c.message_id,
        table.c.send_id,
        table.c.at,
        table.c.kind,
        messages.c.email,
    ]
    if table is message_events:
        cols += [table.c.smtp_code, table.c.detail]
    else:
        cols += [table.c.url, table.c.machine]
    return select(*cols).select_from(table.join(messages, messages.c.id == table.c.message_id))


def _event(prefix: str, r: Any) -> JsonObject:
    data: JsonObject = {
        "message_id": int(r.message_id),
        "send_id": int(r.send_id),
        "recipient": r.email,
        "at": float(r.at),
    }
    if prefix == "me":
        data |= {"smtp_code": r.smtp_code, "detail": r.detail}
        if r.kind == "soft_bounce":
            data["soft_bounce"] = True
    else:
        data |= {"url": r.url, "machine": bool(r.machine)}
    return {
        "id": f"{prefix}_{int(r.id)}",
        "type": EVENT_OF_KIND.get(r.kind, r.kind),
        "timestamp": datetime.fromtimestamp(float(r.at), UTC).isoformat(),
        "data": data,
    }


def due(engine: Engine, now: float) -> list[int]:
    """Enabled webhooks with an open batch due, or pending deliveries and no open batch."""
    with engine.connect() as conn:
        open_due = select(webhook_batches.c.webhook_id).where(
            webhook_batches.c.state == "open", webhook_batches.c.next_attempt_at <= now
        )
        has_open = select(webhook_batches.c.webhook_id).where(webhook_batches.c.state == "open")
        pending = select(webhook_deliveries.c.webhook_id).where(
            webhook_deliveries.c.state == "pending"
        )
        rows = conn.execute(
            select(webhooks.c.id)
            .where(
                webhooks.c.enabled == 1,
                webhooks.c.id.in_(open_due)
                | (webhooks.c.id.in_(pending) & webhooks.c.id.not_in(has_open)),
            )
            .order_by(webhooks.c.id)
        )
        return [int(r.id) for r in rows]


def take_batch(
    engine: Engine, webhook_id: int, size: int, now: float, deadline: float
) -> Batch | None:
    """The webhook's open batch if it is due, else a new one of its oldest pending deliveries;
    taken until `deadline` (a dispatcher that dies mid-request leaves it due then). None when
    nothing is due or another dispatcher holds it."""
    with engine.begin() as conn:
        q = select(webhooks.c.enabled).where(webhooks.c.id == webhook_id)
        if not is_sqlite(conn):
            q = q.with_for_update()
        if not conn.execute(q).scalar():
            return None
        batch = conn.execute(
            select(webhook_batches).where(
                webhook_batches.c.webhook_id == webhook_id, webhook_batches.c.state == "open"
            )
        ).first()
        if batch is None:
            ids = [
                int(r.id)
                for r in conn.execute(
                    select(webhook_deliveries.c.id)
                    .where(
                        webhook_deliveries.c.webhook_id == webhook_id,
                        webhook_deliveries.c.state == "pending",
                    )
                    .order_by(webhook_deliveries.c.id)
                    .limit(size)
                )
            ]
            if not ids:
                return None
            batch_id = "msg_" + secrets.token_hex(12)
            conn.execute(
                insert(webhook_batches).values(
                    id=batch_id,
                    webhook_id=webhook_id,
                    created_at=now,
                    events=len(ids),
                    next_attempt_at=deadline,
                    state="open",
                )
            )
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(ids))
                .values(batch_id=batch_id, state="batched")
            )
            attempts, created = 0, now
        else:
            taken = conn.execute(
                update(webhook_batches)
                .where(
                    webhook_batches.c.id == batch.id,
                    webhook_batches.c.next_attempt_at == batch.next_attempt_at,
                    webhook_batches.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=deadline)
            ).rowcount
            if not taken:
                return None
            batch_id, attempts, created = batch.id, int(batch.attempts), float(batch.created_at)
        events = [
            dict(r.payload)
            for r in conn.execute(
                select(webhook_deliveries.c.payload)
                .where(webhook_deliveries.c.batch_id == batch_id)
                .order_by(webhook_deliveries.c.id)
            )
        ]
    return Batch(batch_id, webhook_id, attempts, created, events, deadline)


def _own(conn: Connection, batch: Batch) -> bool:
    """Lock the webhook row, then check the attempt is still ours (the order `take_batch`
    locks in, so two dispatchers never wait on each other crosswise)."""
    q = select(webhooks.c.id).where(webhooks.c.id == batch.webhook_id)
    if not is_sqlite(conn):
        q = q.with_for_update()
    conn.execute(q).first()
    return (
        conn.execute(
            select(webhook_batches.c.id).where(
                webhook_batches.c.id == batch.id,
                webhook_batches.c.state == "open",
                webhook_batches.c.next_attempt_at == batch.lease,
            )
        ).first()
        is not None
    )


def delivered(engine: Engine, batch: Batch, now: float) -> bool:
    """Record the 2xx; False (nothing written) if the attempt was no longer ours."""
    with engine.begin() as conn:
        if not _own(conn, batch):
            return False
        conn.execute(
            update(webhook_batches)
            .where(webhook_batches.c.id == batch.id)
            .values(state="delivered", delivered_at=now, attempts=batch.attempts + 1)
        )
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.batch_id == batch.id)
            .values(state="delivered")
        )
        conn.execute(
            update(webhooks)
            .where(webhooks.c.id == batch.webhook_id)
            .values(failing_since=None, last_success_at=now, last_error="")
        )
    return True


def failed(
    engine: Engine,
    batch: Batch,
    error: str,
    now: float,
    next_attempt_at: float,
    retry_for: float,
    disable_after: float,
) -> Failed | None:
    """Record a failed attempt: retried at `next_attempt_at`, or dead once the batch is
    `retry_for` old; the webhook disabled once it has failed for `disable_after`. None (nothing
    written) if the attempt was no longer ours."""
    dead = now - batch.created_at >= retry_for
    with engine.begin() as conn:
        if not _own(conn, batch):
            return None
        conn.execute(
            update(webhook_batches)
            .where(webhook_batches.c.id == batch.id)
            .values(
                attempts=batch.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error[:1000],
                state="dead" if dead else "open",
            )
        )
        if dead:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.batch_id == batch.id)
                .values(state="dead")
            )
        since = conn.execute(
            select(webhooks.c.failing_since).where(webhooks.c.id == batch.webhook_id)
        ).scalar()
        since = now if since is None else float(since)
        disable = now - since >= disable_after
        values: dict[str, object] = {"failing_since": since, "last_error": error[:1000]}
        if disable:
            values |= {
                "enabled": 0,
                "disabled_reason": f"every attempt failed for {(now - since) / 3600:.1f} h: "
                + error[:300],
            }
        conn.execute(update(webhooks).where(webhooks.c.id == batch.webhook_id).values(**values))
    return Failed(dead, disable, next_attempt_at)


def replay(engine: Engine, webhook_id: int, since: float, now: float, limit: int) -> int:
    """Deliver again every event since `since` the webhook takes (new pending deliveries, after
    whatever is pending); returns how many, at most `limit`."""
    hook = get(engine, webhook_id)
    types = set(hook.events)
    made = 0
    with engine.begin() as conn:
        for _name, table, prefix in SOURCES:
            kinds = [k for k, t in EVENT_OF_KIND.items() if t in types]
            if not kinds or made >= limit:
                continue
            rows = _since(conn, table, since, kinds, limit - made)
            out = [
                {
                    "webhook_id": webhook_id,
                    "event_id": (event := _event(prefix, r))["id"],
                    "message_id": r.message_id,
                    "at": r.at,
                    "payload": event,
                    "state": "pending",
                }
                for r in rows
            ]
            if out:
                conn.execute(insert(webhook_deliveries), out)
                made += len(out)
    return made


def _since(
    conn: Connection, table: Any, since: float, kinds: Sequence[str], limit: int
) -> list[Any]:
    q = (
        _events_of(table)
        .where(table.c.at >= since, table.c.kind.in_(list(kinds)))
        .order_by(table.c.at, table.c.id)
        .limit(limit)
    )
    return list(conn.execute(q))


def prune(engine: Engine, before: float, chunk: int, chunks: int) -> int:
    """Deliveries delivered (or dead) before `before`, and their batches."""
    gone = prune_table(
        engine,
        webhook_deliveries,
        (webhook_deliveries.c.at < before) & webhook_deliveries.c.state.in_(["delivered", "dead"]),
        chunk,
        chunks,
    )
    with engine.begin() as conn:
        conn.execute(
            delete(webhook_batches).where(
                webhook_batches.c.created_at < before,
                webhook_batches.c.state.in_(["delivered", "dead"]),
            )
        )
    return gone
