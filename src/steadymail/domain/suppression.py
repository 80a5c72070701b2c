"""Suppression rules: which address a suppression names, and which messages it blocks.

The key is the bare address (display name dropped) case-folded whole, with an IDN domain in its
A-label. RFC 5321 lets a mailbox's local part be case-sensitive, but no real provider treats it
so, and for suppression the safe error is to block a lookalike rather than mail someone who
asked us to stop; `casefold` rather than `lower` so that the German sharp s and friends compare
equal too.

Two streams: `marketing` (newsletter unsubscribes) blocks campaigns and any message that offers
an unsubscribe link; `all` (hard bounces, complaints) blocks every message, transactional too.
"""

import contextlib
from email.utils import parseaddr
from enum import StrEnum


class Stream(StrEnum):
    MARKETING = "marketing"
    ALL = "all"


# Reasons that only stop newsletters; anything else (hard_bounce, complaint) stops all mail.
_MARKETING_REASONS = frozenset({"unsubscribed"})


def stream_for(reason: str) -> Stream:
    """The stream a suppression with this reason covers."""
    return Stream.MARKETING if reason in _MARKETING_REASONS else Stream.ALL


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
    return stream == Stream.ALL or marketing
