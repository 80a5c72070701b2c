"""Contact import from CSV: good rows kept, every bad row reported with its line and reason."""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.errors import ValidationError
from steadymail.store import contacts

T = TypeVar("T", covariant=True)

# No deliverable address is longer (RFC 5321 caps a path at 256 octets); refusing longer ones
# up front spares the validator a field of up to csv's field limit (128 KiB).
MAX_ADDRESS = 320


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    list_name: str
    imported: int = 0
    skipped_existing: int = 0
    # The first MAX_REPORTED rows refused; `rejected` counts them all.
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0


MAX_REPORTED = 1000


class RowErrors(list[RowError]):
    """Keeps the first MAX_REPORTED refused rows and counts every one: a file of a million bad
    lines must not cost a million error objects (and a response to match)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, error: RowError) -> None:
        self.total += 1
        if len(self) < MAX_REPORTED:
            super().append(error)


def decoded_lines(raw: bytes, errors: list[RowError], origin: list[int]) -> Iterator[str]:
    """Decode line by line so one badly encoded line costs only itself; `origin` maps back."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            errors.append(RowError(number, f"not valid UTF-8 (byte {e.start})"))
            continue
        origin.append(number)
        yield text


class _Reader(Protocol[T]):
    line_num: int

    def __next__(self) -> T: ...


def numbered_rows(
    reader: _Reader[T], origin: list[int], errors: list[RowError]
) -> Iterator[tuple[int, T]]:
    """(file line, row) for each row a csv reader gives; a malformed row is an error of its
    line and reading goes on."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            errors.append(RowError(origin[reader.line_num - 1], f"malformed CSV: {e}"))
            continue
        yield origin[reader.line_num - 1], row


def parse_contacts(raw: bytes) -> tuple[list[tuple[str, dict[str, str]]], RowErrors]:
    """Parse a CSV with an `email` column; other columns become contact attributes."""
    errors = RowErrors()
    origin: list[int] = []
    reader = csv.reader(decoded_lines(raw, errors, origin))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationError("the file is empty") from None
    except csv.Error as e:
        raise ValidationError(f"the header row is not valid CSV: {e}") from e
    lowered = [h.lower() for h in header]
    if "email" not in lowered:
        raise ValidationError("the header row has no 'email' column")
    email_col = lowered.index("email")
    good: list[tuple[str, dict[str, str]]] = []
    seen: set[str] = set()
    for line, row in numbered_rows(reader, origin, errors):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            errors.append(RowError(line, f"expected {len(header)} columns, found {len(row)}"))
            continue
        if len(row[email_col].strip()) > MAX_ADDRESS:
            errors.append(RowError(line, f"address longer than {MAX_ADDRESS} characters"))
            continue
        try:
            email = validate_email(row[email_col].strip(), check_deliverability=False).normalized
        except EmailNotValidError as e:
            errors.append(RowError(line, f"invalid address {row[email_col]!r}: {e}"))
            continue
        key = email.lower()
        if key in seen:
            errors.append(RowError(line, f"duplicate address {email}"))
            continue
        seen.add(key)
        attrs = {h: v for i, (h, v) in enumerate(zip(header, row, strict=True)) if i != email_col}
        good.append((email, attrs))
    errors.sort(key=lambda e: e.line)
    return good, errors


def import_contacts(
    engine: Engine,
    clock: Clock,
    raw: bytes,
    list_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import into `list_name` (created if missing); addresses already on the list are skipped."""
    good, errors = parse_contacts(raw)
    report = ImportReport(list_name, errors=errors, rejected=errors.total)
    list_id = contacts.get_or_create_list(engine, list_name, clock.now())
    existing = {e.lower() for e in contacts.existing_emails(engine, list_id)}
    fresh = [(e, a) for e, a in good if e.lower() not in existing]
    report.skipped_existing = len(good) - len(fresh)
    step = 5000
    for start in range(0, len(fresh), step):
        report.imported += contacts.insert_contacts(
            engine, list_id, fresh[start : start + step], clock.now()
        )
        if progress:
            progress(report.imported, len(fresh))
    if progress and not fresh:
        progress(0, 0)
    return report
