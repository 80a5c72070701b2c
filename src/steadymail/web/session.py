"""Console sessions: an API key exchanged for a signed cookie, and the CSRF token bound to it.

The cookie names the key by its public prefix and never holds its secret: `v1.<who>.<expires>.
<nonce>.<mac>`, HMAC-SHA256 over the rest. Every request re-reads the key's scopes, so a revoked
key's sessions end at their next request. The CSRF token is an HMAC of the session's nonce:
a page of another site can neither read it nor make one.
"""

import hmac
import secrets
from dataclasses import dataclass

COOKIE_PREFIX = "steadymail_session_"
VERSION = "v1"
# A working day: long enough not to interrupt an incident, short enough to expire unattended.
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """Who a verified cookie names, until when, and the token its forms must carry."""

    who: str
    expires: float
    csrf: str


class SessionSigner:
    """Makes and verifies session cookies with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the console's session key is too short")
        self._key = key
        # Consoles on one host (`up --regions`: three regions and the control plane on
        # 127.0.0.1) share cookies across ports: a name per key keeps their sessions apart.
        self.cookie = COOKIE_PREFIX + self._mac("cookie name")[:8]

    def _mac(self, text: str) -> str:
        return hmac.digest(self._key, text.encode(), "sha256").hex()

    def _csrf(self, nonce: str) -> str:
        return self._mac(f"csrf.{nonce}")[:32]

    def issue(self, who: str, now: float) -> str:
        """A new cookie value for `who` (a key prefix, or `control`)."""
        if not who.isalnum():
            raise ValueError("a session names its key by an alphanumeric prefix")
        body = f"{VERSION}.{who}.{int(now + SESSION_SECONDS)}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac(body)}"

    def verify(self, cookie: str, now: float) -> Session | None:
        """The session a cookie names, or None when it is forged, damaged or expired."""
        if not cookie.isascii():
            return None
        parts = cookie.split(".")
        if len(parts) != 5 or parts[0] != VERSION:
            return None
        body, mac = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        who, expires, nonce = parts[1], parts[2], parts[3]
        if not expires.isdigit() or int(expires) <= now:
            return None
        return Session(who, float(expires), self._csrf(nonce))

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return (
            given is not None
            and given.isascii()
            and hmac.compare_digest(given.encode(), session.csrf.encode())
        )
