"""MIME: multipart/alternative messages with correct encodings and no way to inject headers."""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from steadymail.domain.headers import HeaderInjection, check_header_value
from steadymail.errors import ValidationError


@dataclass(frozen=True)
class Envelope:
    from_addr: str
    to_addr: str
    subject: str
    html: str
    text: str
    message_id: str
    date: float
    headers: dict[str, str] = field(default_factory=dict)


def message_id_for(send_id: int, message_id: int, email: str, domain: str) -> str:
    """The same Message-ID on every attempt of one message, so receivers can spot resends."""
    digest = hashlib.sha256(f"{send_id}:{email.lower()}".encode()).hexdigest()[:12]
    return f"<sm.{send_id}.{message_id}.{digest}@{domain}>"


def parse_address(value: str) -> Address:
    """One mailbox (`Name <a@b>` or `a@b`), with an IDN domain turned into its A-label."""
    check_header_value("address", value)
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ValidationError(f"not a single email address: {value!r}")
    name, addr = pairs[0]
    local, _, domain = addr.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise ValidationError(f"bad domain in {value!r}") from e
    return Address(display_name=name, username=local, domain=domain)


def needs_smtputf8(addr: Address) -> bool:
    return not addr.username.isascii()


def build_message(env: Envelope) -> bytes:
    """The message as CRLF bytes ready for DATA. Raises ValidationError on header injection."""
    try:
        for name, value in (
            ("Subject", env.subject),
            ("From", env.from_addr),
            ("To", env.to_addr),
            *env.headers.items(),
        ):
            check_header_value(name, value)
            check_header_value("header name", name)
    except HeaderInjection as e:
        raise ValidationError(str(e)) from e
    sender, rcpt = parse_address(env.from_addr), parse_address(env.to_addr)
    pol = policy.SMTPUTF8 if needs_smtputf8(sender) or needs_smtputf8(rcpt) else policy.SMTP
    msg = EmailMessage(policy=pol)
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = env.subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(env.date, UTC))
    msg["Message-ID"] = env.message_id
    for name, value in env.headers.items():
        msg[name] = value
    if env.text:
        msg.set_content(env.text, charset="utf-8")
        if env.html:
            msg.add_alternative(env.html, subtype="html", charset="utf-8")
    else:
        msg.set_content(env.html, subtype="html", charset="utf-8")
    return msg.as_bytes()
