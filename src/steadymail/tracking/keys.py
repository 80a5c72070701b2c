"""Tracking secrets: from settings, or generated once into the data dir for development."""

import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from steadymail.config import Settings
from steadymail.secretfile import write_secret
from steadymail.tracking.tokens import Kind, TokenSigner


@dataclass(frozen=True)
class TrackingSecrets:
    signer: TokenSigner
    ip_hash_key: bytes
    # VERP return paths (domain/verp.py): signed with the first, verified with any. Derived
    # from the tracking keys, so rotating those rotates these too.
    verp_keys: tuple[bytes, ...] = ()
    # Signs the console's session cookies and CSRF tokens (web/session.py); derived from the
    # signing tracking key, so every API process of the region accepts the same sessions.
    console_key: bytes = b""


def _verp_key(tracking_key: bytes) -> bytes:
    return hmac.digest(tracking_key, b"steadymail verp", "sha256")


def _console_key(tracking_key: bytes) -> bytes:
    return hmac.digest(tracking_key, b"steadymail console session", "sha256")


def _generated(path: Path) -> dict[str, str]:
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {"kid": "dev1", "secret": secrets.token_urlsafe(32), "ip": secrets.token_urlsafe(32)}
    # Two processes starting together agree on one key: the one whose file was linked first.
    if not write_secret(path, json.dumps(data)):
        return _generated(path)
    return data


def load_tracking_secrets(settings: Settings) -> TrackingSecrets:
    """The signer and IP-hashing key every process of a region must share."""
    retired = set(settings.tracking_retired_keys)
    if settings.tracking_keys:
        keys = {
            k: v.get_secret_value().encode()
            for k, v in settings.tracking_keys.items()
            if k not in retired
        }
        kid = settings.tracking_signing_key or next(iter(keys))
        ip = settings.ip_hash_secret
        if ip is None:
            raise ValueError("ip_hash_secret is required when tracking_keys are configured")
        verp = (keys[kid], *(v for k, v in keys.items() if k != kid))
        return TrackingSecrets(
            TokenSigner(keys, kid, token_ttl(settings)),
            ip.get_secret_value().encode(),
            tuple(_verp_key(k) for k in verp),
            _console_key(keys[kid]),
        )
    gen = _generated(settings.data_dir / "tracking-secrets.json")
    ip_key = (
        settings.ip_hash_secret.get_secret_value() if settings.ip_hash_secret else gen["ip"]
    ).encode()
    key = gen["secret"].encode()
    signer = TokenSigner({gen["kid"]: key}, gen["kid"], token_ttl(settings))
    return TrackingSecrets(signer, ip_key, (_verp_key(key),), _console_key(key))


def token_ttl(settings: Settings) -> dict[Kind, float]:
    """How long each kind of new tracking token stays valid (0: for ever)."""
    return {
        Kind.CLICK: settings.tracking_click_ttl,
        Kind.OPEN: settings.tracking_open_ttl,
        Kind.UNSUBSCRIBE: settings.tracking_unsubscribe_ttl,
    }
