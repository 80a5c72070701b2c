"""Suppression rules: which address a suppression names, and which messages it blocks.

The key is the bare address (display name dropped) case-folded whole, with an IDN domain in its
A-label. RFC 5321 lets a mailbox's local part be case-sensitive, but no real provider treats it
so, and for suppression the safe error is to block a lookalike rather than mail someone who
asked us to stop; `casefold` rather than `lower` so that the German sharp s and friends compare
equal too.

Streams, as Postmark has them: `marketing` blocks campaigns and any message that offers an
unsubscribe link; `transactional` blocks the other messages (receipts, password resets); `all`
blocks both. An unsubscribe or a complaint suppresses the stream it came from; a hard bounce
(the address does not exist) suppresses `all`.
"""

import contextlib
from email.utils import parseaddr
from enum import StrEnum


class Stream(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"
    ALL = "all"


class Reason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    # Soft bounces past the policy (too many in a row): the mailbox is as good as gone.
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBED = "unsubscribed"
    MANUAL = "manual"


# Reasons that only stop newsletters when the stream they came from is not known.
_MARKETING_REASONS = frozenset({"unsubscribed"})


def stream_for(reason: str, *, marketing: bool | None = None) -> Stream:
    """The stream a suppression with this reason covers: bounces every stream; an unsubscribe
    or a complaint the stream of the message it came from (``marketing``; unknown: an
    unsubscribe is a newsletter's, a complaint stops everything)."""
    if reason in (Reason.HARD_BOUNCE, Reason.SOFT_BOUNCE) or (
        marketing is None and reason not in _MARKETING_REASONS
    ):
        return Stream.ALL
    if marketing is None:
        return Stream.MARKETING
    return Stream.MARKETING if marketing else Stream.TRANSACTIONAL


def suppression_key(address: str) -> str:
    """The bare, case-folded form of `address` (`"Ann" <Ann@Example.COM>` → `ann@example.com`)."""
    _name, bare = parseaddr(address)
    bare = (bare or address).strip()
    local, at, domain = bare.rpartition("@")
    if not at:
        return bare.casefold()
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return f"{local.casefold()}@{domain.casefold()}"


def blocks(stream: Stream, *, marketing: bool) -> bool:
    """Whether a suppression in `stream` blocks a message (`marketing`: a campaign, or a message
    that carries an unsubscribe link)."""
    return stream == Stream.ALL or (stream == Stream.MARKETING) == marketing
