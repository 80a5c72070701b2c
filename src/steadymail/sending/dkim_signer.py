"""DKIM signing (RFC 6376, relaxed/relaxed), RSA-SHA256 and Ed25519-SHA256 (RFC 8463), with
`cryptography`: one signature per key of the From domain (a domain with both kinds of key signs
twice, since not every verifier knows Ed25519).

Written here rather than through dkimpy's `dkim.sign`, which parses the key and runs RSA in
Python on every call: 6.7 ms per 27 KB message against 0.3 ms here (measured on this machine,
`docs/design-notes.md`). The tests verify what this signs with dkimpy, an implementation other
than this one.
"""

import base64
import hashlib
import logging
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from steadymail.config import DkimSettings

log = logging.getLogger("steadymail.dkim")

_SIGNED_HEADERS = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "feedback-id",
]
_WSP = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


@dataclass(frozen=True)
class _Key:
    selector: str
    domain: str
    algorithm: str
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_key(data: bytes, algorithm: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """A PEM key (PKCS#1 or PKCS#8); for Ed25519 also the base64 of its 32-byte seed, the form
    dkimpy and PyNaCl write."""
    if algorithm == "ed25519-sha256" and not data.lstrip().startswith(b"-----"):
        return ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(data.strip()))
    key = serialization.load_pem_private_key(data, password=None)
    wanted = ed25519.Ed25519PrivateKey if algorithm == "ed25519-sha256" else rsa.RSAPrivateKey
    if not isinstance(key, wanted):
        raise ValueError(f"the key file does not hold a key for {algorithm}")
    return key


class DkimSigner:
    """Signs messages whose From domain has keys; others pass through unsigned."""

    def __init__(
        self, keys: list[DkimSettings], optional: list[DkimSettings] | None = None
    ) -> None:
        """``keys`` must load (configured by hand: a bad one stops the start); an ``optional``
        key (a sending domain's, from the database) that does not is left out and logged."""
        self._keys = _load(keys, optional or [])

    def replace(self, keys: list[DkimSettings], optional: list[DkimSettings] | None = None) -> None:
        """Sign with these keys from now on (a key activated or retired since); a message
        being signed keeps the keys it started with."""
        self._keys = _load(keys, optional or [])

    def __bool__(self) -> bool:
        return bool(self._keys)

    def sign(self, message: bytes, from_domain: str) -> bytes:
        """The message with a DKIM-Signature header in front of it for each of the domain's
        keys (each computed over the message as it was, not over the other signatures)."""
        keys = self._keys.get(from_domain.lower())
        if not keys:
            return message
        head, sep, body = message.partition(b"\r\n\r\n")
        fields = _fields(head + b"\r\n")
        names = [n for n in _SIGNED_HEADERS if n in fields]
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body if sep else b"")).digest())
        signed_fields = b"".join(_relaxed_header(fields[n]) for n in names)
        headers = b""
        for key in keys:
            tags = (
                f"v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain}; s={key.selector};\r\n"
                f"\th={':'.join(names)};\r\n\tbh={body_hash.decode()};\r\n\tb="
            )
            unsigned = b"DKIM-Signature: " + tags.encode()
            data = signed_fields + _relaxed_header(unsigned).removesuffix(b"\r\n")
            signature = base64.b64encode(_sign(key, data))
            folded = b"\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
            headers += unsigned + folded + b"\r\n"
        return headers + message


def _load(keys: list[DkimSettings], optional: list[DkimSettings]) -> dict[str, list[_Key]]:
    out: dict[str, list[_Key]] = {}
    for k, required in [*((k, True) for k in keys), *((k, False) for k in optional)]:
        try:
            private = load_key(k.key_file.read_bytes(), k.algorithm)
        except (OSError, ValueError, TypeError) as e:
            if required:
                raise
            # One unreadable key (gone, another owner's, damaged) must not stop every domain's
            # signing, nor every later reload.
            log.error(
                "event=dkim_key_unusable domain=%s selector=%s error=%r",
                k.domain,
                k.selector,
                str(e)[:200],
            )
            continue
        out.setdefault(k.domain.lower(), []).append(
            _Key(k.selector, k.domain, k.algorithm, private)
        )
    return out


def _sign(key: _Key, data: bytes) -> bytes:
    if isinstance(key.private, ed25519.Ed25519PrivateKey):
        # RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalised data.
        return key.private.sign(hashlib.sha256(data).digest())
    return key.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _fields(head: bytes) -> dict[str, bytes]:
    """Each header field (with its continuation lines) by lowercased name; where a name
    appears more than once, the last one (RFC 6376 5.4.2 signs from the bottom up)."""
    out: dict[str, bytes] = {}
    for field in re.split(rb"\r\n(?![ \t])", head):
        if b":" in field:
            name = field.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
            out[name] = field + b"\r\n"
    return out


def _relaxed_header(field: bytes) -> bytes:
    """RFC 6376 3.4.2: lowercase name, unfold, runs of whitespace to one space, none at the
    ends of the value or around the colon."""
    name, _, value = field.partition(b":")
    value = _WSP.sub(b" ", _FOLD.sub(b"", value.rstrip(b"\r\n"))).strip(b" ")
    return name.strip().lower() + b":" + value + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of whitespace to one space, none at line ends, no empty lines at
    the end; a non-empty body ends with CRLF (added last, as dkimpy does, so whitespace on an
    unterminated last line is kept; SMTP bodies always end with CRLF anyway)."""
    # Most bodies have nothing to reduce (the regular expressions cost 0.7 ms on 27 KB; these
    # searches, in C, a few microseconds): then only the blank lines at the end go.
    if b"\t" in body or b"  " in body or b" \r\n" in body or body.endswith(b" "):
        body = _TRAILING_WSP.sub(b"\r\n", _WSP.sub(b" ", body))
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""
