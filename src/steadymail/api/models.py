"""Request and response models of the region API, and the limits a request is checked against.

Every request model derives from `In`, which refuses NaN and infinities; free-form JSON values
(variables, labels, flag values) go through `JsonValue`, which refuses them at any depth.
"""

import builtins
import datetime
import json
import math
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from steadymail.domain.headers import check_custom_headers
from steadymail.domain.states import AlertState, MessageState, SendKind, SendState

# A subject is one header line (RFC 5322 §2.1.1: at most 998 characters).
MAX_SUBJECT_CHARS = 998
# Each of a message's or template's html and text parts.
MAX_PART_CHARS = 1_000_000
MAX_VARIABLES = 200
MAX_VARIABLE_NAME_CHARS = 100
MAX_VARIABLES_BYTES = 64 * 1024
MAX_JSON_DEPTH = 20
MAX_ADDRESS_CHARS = 320
# Ids are 64-bit integers in both databases; a larger one can name nothing.
MAX_ID = 2**63 - 1


class In(BaseModel):
    """Base of every request body: numbers must be finite."""

    model_config = ConfigDict(allow_inf_nan=False)


def _finite(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or infinity)")
    if isinstance(value, dict):
        for v in value.values():
            _finite(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _finite(v, depth + 1)


def _finite_json(value: Any) -> Any:
    _finite(value)
    return value


def _variables(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_VARIABLES:
        raise ValueError(f"at most {MAX_VARIABLES} variables")
    for name in value:
        if len(name) > MAX_VARIABLE_NAME_CHARS:
            raise ValueError(f"a variable name is at most {MAX_VARIABLE_NAME_CHARS} characters")
    _finite(value)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_VARIABLES_BYTES:
        raise ValueError(f"variables take at most {MAX_VARIABLES_BYTES} bytes as JSON")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    check_custom_headers(value)  # BadHeader is a ValueError: a 422 naming the header
    return value


JsonValue = Annotated[Any, AfterValidator(_finite_json)]
Labels = Annotated[dict[str, Any], AfterValidator(_finite_json)]
Variables = Annotated[dict[str, Any], AfterValidator(_variables)]
CustomHeaders = Annotated[dict[str, str], AfterValidator(_headers)]
Subject = Annotated[str, Field(max_length=MAX_SUBJECT_CHARS)]
Part = Annotated[str, Field(max_length=MAX_PART_CHARS)]
Address = Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_CHARS)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


class Out(BaseModel):
    """Base of response models that name the fields clients rely on and pass on the rest."""

    model_config = ConfigDict(extra="allow")


class Created(BaseModel):
    id: int
    name: str


class ListOut(Out):
    id: int
    name: str
    contacts: int


class RowError(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    list: str
    imported: int
    skipped_existing: int
    # `builtins.list`: the field `list` shadows the name in the class body.
    errors: builtins.list[RowError] = Field(
        description="rows refused, by line (the first 1000); others are kept"
    )
    rejected: int = Field(description="how many rows were refused in all")


class TemplateOut(Out):
    id: int
    name: str
    subject: str
    variables: list[str]


class SendOut(Out):
    id: int
    name: str
    kind: SendKind
    state: SendState
    scheduled_at: float | None = Field(
        default=None, description="epoch seconds a scheduled send starts at"
    )


class MessageOut(Out):
    id: int
    send_id: int
    email: str
    state: MessageState


class QueuedOut(BaseModel):
    send_id: int
    message_ids: list[int]


class CapturedOut(Out):
    id: int
    received_at: float
    mail_from: str
    rcpt_to: str
    subject: str


class AlertOut(Out):
    id: int
    fingerprint: str
    name: str
    severity: str
    state: AlertState
    summary: str
    labels: dict[str, Any]
    started_at: float


class WorkerOut(Out):
    instance_id: str
    service: str
    region: str
    heartbeat_age: float


class ChangeOut(Out):
    id: int
    at: float
    kind: str
    subject: str


class FlagChangeOut(Out):
    id: int
    name: str
    at: float
    by: str


class StartedOut(Out):
    send_id: int
    messages: int = Field(description="messages materialised")
    batches: int
    suppressed: int = Field(description="contacts skipped: suppressed or unsubscribed")


class ScheduleIn(BaseModel):
    """When the campaign starts: ``at`` with its offset (``2026-12-01T09:00:00+01:00``), or a
    wall time with ``tz`` (``2026-12-01T09:00`` and ``Europe/Berlin``)."""

    at: datetime.datetime
    tz: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])


class ScheduledOut(BaseModel):
    send_id: int
    state: SendState
    scheduled_at: float = Field(description="epoch seconds")


class SteeredOut(BaseModel):
    send_id: int
    state: SendState


class StatsOut(Out):
    send_id: int
    delivered: int
    links: list[dict[str, Any]] = Field(description="clicks per link")


class FlagsOut(BaseModel):
    region: str
    flags: dict[str, Any] = Field(description="flags set in this region, by name")
    known: dict[str, str] = Field(description="every flag the region knows, with what it does")


class FlagSetOut(BaseModel):
    name: str
    value: Any
    previous: Any
    # Quarantined messages a revert released (the workers they killed died of the change).
    released: int = 0


class ExternalAlertOut(BaseModel):
    id: int | None = Field(description="the alert; null when there was none to resolve")
    opened: bool | None = Field(default=None, description="raised: a new alert was opened")
    resolved: bool | None = Field(default=None, description="resolved: an alert was resolved")


class NotedOut(BaseModel):
    status: str


class SeriesOut(Out):
    name: str
    points: list[list[float]] = Field(description="[epoch seconds, value] pairs")


class HealthOut(BaseModel):
    status: str = Field(description="`ok` while the process serves")
    region: str
    version: str


class ReadyOut(BaseModel):
    status: str = Field(description="`ok`, or `failing` when the region database does not answer")
    region: str | None = Field(default=None, description="when ok")
    error: str | None = Field(default=None, description="when failing: the kind of error")


class StatusOut(BaseModel):
    status: str
