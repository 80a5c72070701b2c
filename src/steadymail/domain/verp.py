"""VERP return paths: every message's envelope sender names it, so a bounce names it too.

`bounces+<message id, hex>-<mac>@<bounce domain>`: the mac is the first 16 hex digits of
HMAC-SHA256(key, "verp:" id), so nobody can forge a bounce for a message (and suppress its
recipient) without the key. Lower-case hex throughout, because some servers fold the local
part's case; 8 + 16 + 1 + 16 characters at most, well inside the 64 a local part may have.
"""

import hmac
import re
from collections.abc import Iterable

PREFIX = "bounces"
_MAC_HEX = 16
_VERP = re.compile(rf"^{PREFIX}\+([0-9a-f]{{1,16}})-([0-9a-f]{{{_MAC_HEX}}})@", re.IGNORECASE)


def _mac(key: bytes, message_id: int) -> str:
    return hmac.digest(key, f"verp:{message_id}".encode(), "sha256").hex()[:_MAC_HEX]


def verp_address(message_id: int, key: bytes, domain: str) -> str:
    """The return path of message `message_id` at `domain`."""
    return f"{PREFIX}+{message_id:x}-{_mac(key, message_id)}@{domain}"


def message_of(address: str, keys: Iterable[bytes]) -> int | None:
    """The message a return path names, if its mac verifies under one of `keys`; else None."""
    m = _VERP.match(address.strip().strip("<>"))
    if m is None:
        return None
    message_id, mac = int(m.group(1), 16), m.group(2).lower()
    for key in keys:
        if hmac.compare_digest(_mac(key, message_id), mac):
            return message_id
    return None
