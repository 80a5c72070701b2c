"""Tracking tokens: compact, URL-safe, HMAC-SHA256 signed, with a key id for rotation.

`<kid>.<payload>.<mac>`: payload is kind, send, message and link as varints followed by the
destination URL (zlib-compressed when that is shorter); mac is the first 16 bytes of
HMAC-SHA256(key[kid], kid "." payload). The URL travels inside the signed token, so the click
endpoint needs no lookup and can only ever redirect to a URL we signed.

A token may expire: its kind is then written in capitals and the expiry, in whole minutes since
the epoch, follows the link number as one more varint (4 bytes, ~6 characters). Tokens without
one (lower-case kind, as every token was before expiry existed) keep verifying for as long as
their key is accepted.
"""

import base64
import functools
import hmac
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    CLICK = "c"
    OPEN = "o"
    UNSUBSCRIBE = "u"


@dataclass(frozen=True)
class TokenData:
    kind: Kind
    send_id: int
    message_id: int
    link: int = 0
    url: str = ""


class InvalidToken(Exception):
    """Forged, truncated, malformed, or signed with a key we no longer accept."""


_MAC_BYTES = 16
_COMPRESSED = 0x80
# Clearing this bit turns the kind's letter into a capital: the token carries an expiry.
_NO_EXPIRY = 0x20


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise InvalidToken("bad encoding") from e
    # Only the canonical spelling is accepted, so no two strings are the same token.
    if _b64(raw) != text:
        raise InvalidToken("non-canonical encoding")
    return raw


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise InvalidToken("truncated")


@functools.lru_cache(maxsize=4096)
def _packed_url(text: str) -> tuple[bool, bytes]:
    """(compressed?, bytes) of a destination URL. Cached: a send signs the same few dozen URLs
    in every message, and deflating one (~14 µs) cost three times the rest of a signature."""
    url = text.encode("utf-8")
    packed = zlib.compress(url, 9)[2:-4] if len(url) > 60 else b""
    if packed and len(packed) < len(url):
        return True, packed
    return False, url


class TokenSigner:
    """Signs with one key id, verifies with any accepted one.

    `ttl` gives, per kind, the seconds a new token stays valid (absent or 0: for ever);
    `now` is the clock (seconds since the epoch) both signing and verifying read.
    """

    def __init__(
        self,
        keys: dict[str, bytes],
        signing_kid: str,
        ttl: Mapping[Kind, float] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if signing_kid not in keys:
            raise ValueError(f"signing key {signing_kid!r} is not among the keys")
        if any(not kid.isalnum() or len(kid) > 16 for kid in keys):
            raise ValueError("key ids must be 1-16 letters or digits")
        if any(not math.isfinite(t) or t < 0 for t in (ttl or {}).values()):
            raise ValueError("token lifetimes must be finite and not negative")
        self._keys = keys
        self._kid = signing_kid
        self._ttl = dict(ttl or {})
        self._now = now

    def _mac(self, kid: str, payload: bytes) -> bytes:
        # hmac.digest is the one-shot C path: a third of hmac.new(...).digest()'s cost.
        return hmac.digest(self._keys[kid], kid.encode() + b"." + payload, "sha256")[:_MAC_BYTES]

    def sign(self, data: TokenData) -> str:
        ids = _varint(data.send_id) + _varint(data.message_id) + _varint(data.link)
        flags = ord(data.kind)
        ttl = self._ttl.get(data.kind, 0.0)
        if ttl > 0:
            flags &= ~_NO_EXPIRY
            ids += _varint(math.ceil((self._now() + ttl) / 60))
        compressed, url = _packed_url(data.url)
        if compressed:
            flags |= _COMPRESSED
        payload = bytes([flags]) + ids + url
        return f"{self._kid}.{_b64(payload)}.{_b64(self._mac(self._kid, payload))}"

    def verify(self, token: str) -> TokenData:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] not in self._keys:
            raise InvalidToken("unknown key or malformed token")
        kid, payload = parts[0], _unb64(parts[1])
        if not hmac.compare_digest(self._mac(kid, payload), _unb64(parts[2])):
            raise InvalidToken("bad signature")
        if not payload:
            raise InvalidToken("empty")
        flags = payload[0]
        expiring = not flags & _NO_EXPIRY
        try:
            kind = Kind(chr(flags & 0x7F | _NO_EXPIRY))
        except ValueError as e:
            raise InvalidToken("unknown kind") from e
        send_id, pos = _read_varint(payload, 1)
        message_id, pos = _read_varint(payload, pos)
        link, pos = _read_varint(payload, pos)
        if expiring:
            minute, pos = _read_varint(payload, pos)
            if self._now() >= minute * 60:
                raise InvalidToken("expired")
        raw = payload[pos:]
        try:
            if flags & _COMPRESSED:
                raw = zlib.decompress(raw, -15)
            url = raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as e:
            raise InvalidToken("bad url") from e
        return TokenData(kind, send_id, message_id, link, url)
