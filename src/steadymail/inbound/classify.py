"""What an inbound report is: a hard or soft bounce, a complaint, an auto-reply, or unknown.

In that order of evidence: a feedback report (ARF, RFC 5965: `multipart/report;
report-type=feedback-report`) is a complaint; a delivery status notification (RFC 3464:
`report-type=delivery-status`) is read recipient by recipient (`Action`, `Status`,
`Diagnostic-Code`): a 5.x.x status, or a failure without one, is hard, a 4.x.x status or a
delay is soft; anything else is given to flufl.bounce (Mailman's detectors of the
non-standard formats: Exim, qmail, old Exchange, Yahoo, ...), whose permanent failures are
hard and temporary ones soft; a message marked as automatic (`Auto-Submitted`, `X-Autoreply`,
out-of-office subjects) that is none of these is an auto-reply, never a bounce. The rest is
unknown and kept for a person.

Pure: bytes in, a `Report` out; nothing of the platform is imported, and no input may raise.
"""

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from enum import StrEnum

from flufl.bounce import all_failures


class Kind(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    AUTOREPLY = "autoreply"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Report:
    kind: Kind
    # The failed (or complained-about) recipients the report names, lower-cased.
    recipients: tuple[str, ...] = ()
    # An enhanced status code (5.1.1) when the report gives one.
    status: str = ""
    # What the remote server said, or the feedback type of a complaint.
    diagnostic: str = ""
    # From the original message when the report carries it: its Return-Path and Message-ID.
    original_return_path: str = ""
    original_message_id: str = ""
    how: str = ""  # which reading decided: arf, dsn, flufl, headers
    notes: list[str] = field(default_factory=list)


_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|"
    r"abwesenheit|réponse automatique|respuesta automática|vacation|away from)",
    re.IGNORECASE,
)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY_LINE = re.compile(r"^.*\b[45]\d\d[ -].*$", re.MULTILINE)


def classify(raw: bytes) -> Report:
    """Never raises: a report that cannot be read is UNKNOWN with the reason in `notes`."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as e:  # the parser is lenient; this is belt and braces
        return Report(Kind.UNKNOWN, notes=[f"unparseable: {type(e).__name__}"])
    try:
        return _classify(msg)
    except Exception as e:
        return Report(Kind.UNKNOWN, notes=[f"unreadable: {type(e).__name__}: {e}"[:300]])


def _classify(msg: Message) -> Report:
    report_type = _report_type(msg)
    if report_type == "feedback-report":
        return _arf(msg)
    if report_type == "delivery-status":
        dsn = _dsn(msg)
        if dsn is not None:
            return dsn
    flufl = _flufl(msg)
    if flufl is not None:
        return flufl
    if _automatic(msg):
        return Report(Kind.AUTOREPLY, how="headers")
    return Report(Kind.UNKNOWN, notes=["no bounce, complaint or auto-reply recognised"])


def _report_type(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "multipart/report":
            return str(part.get_param("report-type", "") or "").strip().lower()
    return ""


def _original(msg: Message) -> tuple[str, str]:
    """Return-Path and Message-ID of the original message a report carries (whole, or its
    headers only)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return _clean(inner.get("Return-Path", "")), _clean(inner.get("Message-ID", ""))
        if ctype in ("text/rfc822-headers", "text/global-headers"):
            headers = email.message_from_string(_text(part), policy=email.policy.compat32)
            return _clean(headers.get("Return-Path", "")), _clean(headers.get("Message-ID", ""))
    return "", ""


def _arf(msg: Message) -> Report:
    fields = _report_fields(msg, "message/feedback-report")
    block = fields[0] if fields else {}
    feedback = block.get("feedback-type", "").strip().lower()
    rcpts = tuple(
        _addr(v) for k, v in _pairs(fields) if k in ("original-rcpt-to", "removal-recipient")
    )
    return_path, message_id = _original(msg)
    if feedback == "not-spam":
        # A recipient saying a message is *not* spam is no complaint.
        return Report(
            Kind.UNKNOWN,
            rcpts,
            diagnostic=feedback,
            how="arf",
            original_return_path=return_path,
            original_message_id=message_id,
            notes=["feedback type not-spam"],
        )
    return Report(
        Kind.COMPLAINT,
        rcpts,
        diagnostic=feedback or "abuse",
        original_return_path=return_path,
        original_message_id=message_id,
        how="arf",
    )


def _dsn(msg: Message) -> Report | None:
    blocks = _report_fields(msg, "message/delivery-status")
    hard: list[tuple[tuple[str, ...], str, str]] = []
    soft: list[tuple[tuple[str, ...], str, str]] = []
    for b in blocks[1:] if len(blocks) > 1 else blocks:
        action = b.get("action", "").strip().lower()
        # Both: the final recipient may be an internal name for the address we sent to.
        rcpts = tuple(
            a
            for a in dict.fromkeys(
                _addr(b.get(h, "")) for h in ("original-recipient", "final-recipient")
            )
            if a
        )
        status_m = _STATUS.search(b.get("status", ""))
        status = ".".join(status_m.groups()) if status_m else ""
        diagnostic = _one_line(b.get("diagnostic-code", "").split(";", 1)[-1])
        if action in ("delivered", "relayed", "expanded") or status.startswith("2"):
            continue
        if status.startswith("5") or (not status and action == "failed"):
            hard.append((rcpts, status, diagnostic))
        elif status.startswith("4") or action == "delayed" or action == "failed":
            soft.append((rcpts, status, diagnostic))
    return_path, message_id = _original(msg)
    for kind, found in ((Kind.HARD_BOUNCE, hard), (Kind.SOFT_BOUNCE, soft)):
        if found:
            return Report(
                kind,
                tuple(dict.fromkeys(a for rcpts, _, _ in found for a in rcpts)),
                status=found[0][1],
                diagnostic=found[0][2] or _reply_line(msg),
                original_return_path=return_path,
                original_message_id=message_id,
                how="dsn",
            )
    return None


def _flufl(msg: Message) -> Report | None:
    temporary, permanent = all_failures(msg)
    return_path, message_id = _original(msg)
    for kind, found in ((Kind.HARD_BOUNCE, permanent), (Kind.SOFT_BOUNCE, temporary)):
        addrs = tuple(sorted({_addr(_decode(a)) for a in found} - {""}))
        if addrs:
            status_m = _STATUS.search(_reply_line(msg))
            return Report(
                kind,
                addrs,
                status=".".join(status_m.groups()) if status_m else "",
                diagnostic=_reply_line(msg),
                original_return_path=return_path,
                original_message_id=message_id,
                how="flufl",
            )
    return None


def _automatic(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied") or auto.startswith("auto-generated"):
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_one_line(str(msg.get("Subject", "")))))


def _report_fields(msg: Message, ctype: str) -> list[dict[str, str]]:
    """The header blocks of the first `ctype` part, names lower-cased (first value wins)."""
    for part in msg.walk():
        if part.get_content_type() != ctype:
            continue
        payload = part.get_payload()
        texts: list[str] = []
        if isinstance(payload, list):  # message/delivery-status: parsed into blocks
            for block in payload:
                if isinstance(block, Message):
                    texts.append("".join(f"{k}: {v}\n" for k, v in block.items()))
        else:
            texts = re.split(r"\r?\n\r?\n", _text(part))
        out = []
        for t in texts:
            fields: dict[str, str] = {}
            for line in re.sub(r"\r?\n[ \t]+", " ", t).splitlines():
                name, sep, value = line.partition(":")
                if sep and name.strip():
                    fields.setdefault(name.strip().lower(), value.strip())
            if fields:
                out.append(fields)
        return out
    return []


def _pairs(blocks: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for b in blocks for k, v in b.items()]


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _reply_line(msg: Message) -> str:
    """The first line of the report's text that reads like an SMTP reply (550 ...)."""
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            m = _REPLY_LINE.search(_text(part))
            if m:
                return _one_line(m.group(0))
    return ""


def _addr(value: str) -> str:
    """`rfc822; Ann@Example.com` or `<ann@example.com>` → `ann@example.com`."""
    value = value.split(";", 1)[-1] if ";" in value else value
    return value.strip().strip("<>").strip().lower()


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _clean(value: object) -> str:
    return _one_line(str(value)).strip("<>") if value else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
