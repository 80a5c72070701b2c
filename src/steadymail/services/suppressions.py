"""What people ask of the suppression list: list, search, add, remove, import, export, and the
log of who added and removed what."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.domain.suppression import Reason, Stream
from steadymail.errors import NotFound, ValidationError
from steadymail.services.csv_import import (
    MAX_ADDRESS,
    RowError,
    RowErrors,
    decoded_lines,
    numbered_rows,
)
from steadymail.store import suppressions
from steadymail.store.suppressions import LoggedChange, Suppression

__all__ = ["LoggedChange", "Suppression"]

E = TypeVar("E", bound=StrEnum)

EXPORT_COLUMNS = ["email", "stream", "reason", "detail", "created_at", "message_id"]


@dataclass
class SuppressionImport:
    added: int = 0
    already: int = 0
    # The first MAX_REPORTED rows refused; `rejected` counts them all.
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0


def _one_of(kind: type[E], what: str, name: str) -> E:
    try:
        return kind(name.strip().lower())
    except ValueError:
        raise ValidationError(
            f"{what} {name[:40]!r} is one of {', '.join(m.value for m in kind)}"
        ) from None


def stream_of(name: str) -> Stream:
    return _one_of(Stream, "stream", name)


def reason_of(name: str) -> Reason:
    return _one_of(Reason, "reason", name)


def address(text: str) -> str:
    """A single valid address, normalised (the display name is not allowed here)."""
    text = text.strip()
    if len(text) > MAX_ADDRESS:
        raise ValidationError(f"address longer than {MAX_ADDRESS} characters")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise ValidationError(f"invalid address {text[:80]!r}: {e}") from e


def _who(by: str) -> str:
    if not by.strip():
        raise ValidationError("say who does it ('by')")
    return by.strip()[:200]


def listing(
    engine: Engine,
    stream: str | None = None,
    reason: str | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Suppression]:
    """Suppressions, newest first; `search` matches part of the address."""
    return suppressions.listing(
        engine,
        stream=None if stream is None else stream_of(stream),
        reason=None if reason is None else reason_of(reason).value,
        search=search.strip() if search else None,
        limit=limit,
        offset=offset,
    )


def add(
    engine: Engine,
    clock: Clock,
    emails: list[str],
    stream: str,
    by: str,
    why: str = "",
    reason: str = Reason.MANUAL,
) -> int:
    """Suppress addresses by hand (all or none: one bad address refuses the request); returns
    how many were not suppressed in that stream already."""
    entries = [(address(e), stream_of(stream)) for e in emails]
    return suppressions.add_by_hand(
        engine, entries, reason_of(reason).value, _who(by), why[:1000], clock.now()
    )


def remove(
    engine: Engine, clock: Clock, email: str, stream: str | None, by: str, why: str
) -> list[Suppression]:
    """Lift an address's suppressions (in one stream, or all), logged with who and why."""
    if not why.strip():
        raise ValidationError("say why the suppression is lifted ('reason')")
    gone = suppressions.remove(
        engine,
        address(email),
        None if stream is None else stream_of(stream),
        _who(by),
        why.strip()[:1000],
        clock.now(),
    )
    if not gone:
        raise NotFound(f"{email[:80]} is not suppressed" + (f" in {stream}" if stream else ""))
    return gone


def import_csv(
    engine: Engine, clock: Clock, raw: bytes, by: str, stream: str, reason: str = Reason.MANUAL
) -> SuppressionImport:
    """Suppress every address of a CSV with an `email` column (and optionally `stream` and
    `reason` columns, else the given ones); bad rows are reported by line, good rows kept."""
    default_stream, default_reason, who = stream_of(stream), reason_of(reason), _who(by)
    errors = RowErrors()
    origin: list[int] = []
    reader = csv.DictReader(decoded_lines(raw, errors, origin))
    if reader.fieldnames is None:
        raise ValidationError("the file is empty")
    columns = {h.strip().lower(): h for h in reader.fieldnames}
    if "email" not in columns:
        raise ValidationError("the header row has no 'email' column")
    good: dict[Stream, dict[Reason, list[tuple[str, Stream]]]] = {}
    for line, row in numbered_rows(reader, origin, errors):
        if None in row or any(v is None for v in row.values()):
            errors.append(RowError(line, "wrong number of columns"))
            continue
        try:
            email = address(row[columns["email"]])
            s = stream_of(row[columns["stream"]]) if row.get(columns.get("stream", "")) else None
            r = reason_of(row[columns["reason"]]) if row.get(columns.get("reason", "")) else None
        except ValidationError as e:
            errors.append(RowError(line, str(e)))
            continue
        s, r = s or default_stream, r or default_reason
        good.setdefault(s, {}).setdefault(r, []).append((email, s))
    errors.sort(key=lambda e: e.line)
    report = SuppressionImport(errors=errors, rejected=errors.total)
    for by_reason in good.values():
        for r, entries in by_reason.items():
            for i in range(0, len(entries), 5000):
                chunk = entries[i : i + 5000]
                added = suppressions.add_by_hand(
                    engine, chunk, r.value, who, "imported", clock.now()
                )
                report.added += added
                report.already += len(chunk) - added
    return report


def export_csv(engine: Engine) -> Iterator[str]:
    """The whole list as CSV (header first), a chunk of rows at a time."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(EXPORT_COLUMNS)
    for i, s in enumerate(suppressions.every(engine)):
        out.writerow(
            [s.email, s.stream.value, s.reason, s.detail, f"{s.created_at:.3f}", s.message_id or ""]
        )
        if i % 1000 == 999:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def log(
    engine: Engine, email: str | None = None, limit: int = 100, offset: int = 0
) -> list[LoggedChange]:
    """Suppressions people added and removed, newest first."""
    return suppressions.log(engine, email, limit, offset)
