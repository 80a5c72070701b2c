"""API keys: stored as SHA-256 of a 256-bit random secret; shown once, never logged."""

import hashlib
import hmac
import secrets

from sqlalchemy import Engine, insert, select

from steadymail.errors import Unauthorized
from steadymail.store.schema import api_keys

SCOPES = frozenset({"read", "write", "send"})


def _hash(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash suffices; a slow KDF guards low-entropy input.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: Engine, name: str, scopes: set[str], now: float) -> str:
    """Create a key and return its full text (`sm_<prefix>_<secret>`); it is not stored."""
    bad = scopes - SCOPES
    if bad or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                name=name,
                prefix=prefix,
                key_hash=_hash(secret),
                scopes=",".join(sorted(scopes)),
                created_at=now,
            )
        )
    return f"sm_{prefix}_{secret}"


def authenticate(engine: Engine, key: str) -> set[str]:
    """The scopes of a valid, unrevoked key; Unauthorized otherwise."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "sm":
        raise Unauthorized("malformed API key")
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.key_hash, api_keys.c.scopes, api_keys.c.revoked_at).where(
                api_keys.c.prefix == parts[1]
            )
        ).first()
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.key_hash, _hash(parts[2]))
    ):
        raise Unauthorized("invalid API key")
    return set(row.scopes.split(","))
