"""API keys: stored as SHA-256 of a 256-bit random secret; shown once, never logged."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace

from sqlalchemy import Engine, RowMapping, insert, or_, select, update

from steadymail.errors import Conflict, NotFound, Unauthorized
from steadymail.store.schema import api_keys

# admin: flags (fault injection included), quarantine release and requeue.
SCOPES = frozenset({"read", "write", "send", "admin"})


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown of a key: never its secret nor its hash."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None


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


def scopes_of(engine: Engine, prefix: str) -> set[str]:
    """The scopes of the unrevoked key with `prefix` (a console session names its key by
    prefix, never by its secret); Unauthorized once it is revoked or gone."""
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.scopes, api_keys.c.revoked_at).where(api_keys.c.prefix == prefix)
        ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("this API key was revoked")
    return set(row.scopes.split(","))


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.scopes,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)


def _info(r: RowMapping) -> ApiKeyInfo:
    return ApiKeyInfo(
        int(r["id"]),
        r["name"],
        r["prefix"],
        tuple(r["scopes"].split(",")),
        float(r["created_at"]),
        r["revoked_at"],
    )


def list_keys(engine: Engine) -> list[ApiKeyInfo]:
    """Every key, oldest first, revoked ones included."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_COLUMNS).order_by(api_keys.c.id)).mappings()
        return [_info(r) for r in rows]


def revoke(engine: Engine, ref: str, now: float) -> ApiKeyInfo:
    """Revoke the key whose id or prefix is `ref` (at once: its next request is a 401).
    Revoking a revoked key changes nothing."""
    ref = ref.strip()
    if ref.startswith("sm_"):  # the key's printed form up to its prefix
        ref = ref.split("_")[1]
    match = api_keys.c.prefix == ref
    if ref.isdigit():
        match = or_(match, api_keys.c.id == int(ref))
    with engine.begin() as conn:
        rows = conn.execute(select(*_COLUMNS).where(match)).mappings().all()
        if not rows:
            raise NotFound(f"no API key with id or prefix {ref!r}")
        if len(rows) > 1:
            raise Conflict(f"{ref!r} is one key's id and another's prefix; give the prefix")
        info = _info(rows[0])
        if info.revoked_at is None:
            conn.execute(update(api_keys).where(api_keys.c.id == info.id).values(revoked_at=now))
    return info if info.revoked_at is not None else replace(info, revoked_at=now)
