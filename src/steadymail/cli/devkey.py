"""The API key `steadymail up` keeps for a region in its data directory (mode 0600)."""

from pathlib import Path

from steadymail.clock import Clock
from steadymail.errors import Unauthorized
from steadymail.secretfile import read_or_create, write_secret
from steadymail.services import apikeys
from steadymail.services.database import Engine


def dev_key(engine: Engine, path: Path, clock: Clock) -> str:
    """The key in `path` if it still works with every scope (the CLI, the control plane's
    rollouts and a person at /docs all use it); otherwise a new one, written there."""

    def make() -> str:
        return apikeys.create_key(engine, clock, "dev", set(apikeys.SCOPES))

    if not path.exists():
        return read_or_create(path, make)
    key = path.read_text().strip()
    try:
        if apikeys.authenticate(engine, key) >= apikeys.SCOPES:
            return key
    except Unauthorized:
        pass  # revoked, or from an older database: replaced below
    # A key from before a scope existed (admin), or revoked: it would leave `up` half-working.
    key = make()
    write_secret(path, key + "\n", replace=True)
    return key
