"""Event webhooks: the event types, Standard Webhooks signatures, and the retry schedule.

Signatures follow the Standard Webhooks specification (standardwebhooks.com): the secret is
`whsec_` + base64 of its bytes; each request carries `webhook-id` (the same on every retry of
it), `webhook-timestamp` (epoch seconds of this attempt) and `webhook-signature`:
`v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), several separated by spaces
while a secret is rotated.
"""

import base64
import binascii
import hashlib
import hmac
import math
import secrets as random_secrets
from collections.abc import Mapping

from steadymail.errors import ValidationError

EVENT_TYPES = (
    "queued",
    "sent",
    "deferred",
    "bounced",
    "failed",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
)
# Message log kinds (message_events, tracking_events) as webhook event types.
EVENT_OF_KIND = {
    "queued": "queued",
    "sent": "sent",
    "deferred": "deferred",
    "soft_bounce": "deferred",
    "bounced": "bounced",
    "failed": "failed",
    "complained": "complained",
    "open": "opened",
    "click": "clicked",
    "unsubscribe": "unsubscribed",
}
_PREFIX = "whsec_"


def new_secret() -> str:
    return _PREFIX + base64.b64encode(random_secrets.token_bytes(24)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_...` secret; ValidationError for anything else."""
    body = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else ""
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not 16 <= len(key) <= 64:
        raise ValidationError("a webhook secret is 'whsec_' and base64 of 16 to 64 bytes")
    return key


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise ValidationError(
            f"events are some of {', '.join(EVENT_TYPES)}" + (f"; not {unknown}" if unknown else "")
        )
    return [e for e in EVENT_TYPES if e in events]


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.digest(secret_bytes(secret), signed, hashlib.sha256)
    return "v1," + base64.b64encode(mac).decode()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = 300
) -> bool:
    """What a receiver checks: a signature made with `secret` over this body, and a timestamp
    within `tolerance` seconds of `now` (replays of old requests are refused)."""
    try:
        msg_id, ts = headers["webhook-id"], int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, s) for s in offered)


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling from `base`, at
    most `cap`."""
    if attempts <= 0:
        return 0.0
    return min(cap, base * math.pow(2, min(attempts - 1, 40)))
