"""API keys as the API, the CLI and `steadymail up` use them: created (the text shown once),
checked for a scope, listed and revoked. Only a key's SHA-256 is stored (store/apikeys.py)."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import apikeys
from steadymail.store.apikeys import SCOPES, ApiKeyInfo

__all__ = [
    "SCOPES",
    "ApiKeyInfo",
    "authenticate",
    "create_key",
    "list_keys",
    "prefix_of",
    "revoke",
    "scopes_of",
]


def create_key(engine: Engine, clock: Clock, name: str, scopes: set[str]) -> str:
    """A new key with `scopes`; its full text is returned once and never stored."""
    return apikeys.create_key(engine, name, scopes, clock.now())


def authenticate(engine: Engine, key: str) -> set[str]:
    """The scopes of a valid, unrevoked key; Unauthorized otherwise."""
    return apikeys.authenticate(engine, key)


def scopes_of(engine: Engine, prefix: str) -> set[str]:
    """The scopes of the key with `prefix` while it is unrevoked; Unauthorized after."""
    return apikeys.scopes_of(engine, prefix)


def prefix_of(key: str) -> str:
    """The public prefix of a key's text (`sm_<prefix>_<secret>`)."""
    return key.split("_", 2)[1]


def list_keys(engine: Engine) -> list[ApiKeyInfo]:
    """Every key, oldest first, revoked ones included (never a secret nor a hash)."""
    return apikeys.list_keys(engine)


def revoke(engine: Engine, clock: Clock, ref: str) -> ApiKeyInfo:
    """Revoke the key whose id or prefix is `ref`: its next request is a 401."""
    return apikeys.revoke(engine, ref, clock.now())
