"""DKIM signing with dkimpy, RSA-SHA256 or Ed25519-SHA256, one key per signing domain."""

import dkim

from steadymail.config import DkimSettings

_SIGNED_HEADERS = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
]


class DkimSigner:
    """Signs messages whose From domain has a configured key; others pass through unsigned."""

    def __init__(self, keys: list[DkimSettings]) -> None:
        self._keys = {
            k.domain.lower(): (
                k.selector.encode(),
                k.domain.encode(),
                k.key_file.read_bytes(),
                k.algorithm.encode(),
            )
            for k in keys
        }

    def __bool__(self) -> bool:
        return bool(self._keys)

    def sign(self, message: bytes, from_domain: str) -> bytes:
        key = self._keys.get(from_domain.lower())
        if key is None:
            return message
        selector, domain, private, algorithm = key
        header = dkim.sign(
            message,
            selector,
            domain,
            private,
            signature_algorithm=algorithm,
            include_headers=[h for h in _SIGNED_HEADERS if _has_header(message, h)],
        )
        return bytes(header) + message


def _has_header(message: bytes, name: bytes) -> bool:
    head = message.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name + b":") or (b"\r\n" + name + b":") in head
