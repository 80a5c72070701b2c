"""Request-scoped dependencies: the app's state and API-key authentication with scopes."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import Forbidden, Unauthorized
from steadymail.metrics import Metrics
from steadymail.services import apikeys
from steadymail.services.database import Engine
from steadymail.tracking.events import EventRecorder
from steadymail.tracking.tokens import TokenSigner

# Declares the scheme in the OpenAPI schema (/docs can send it); the checks below are ours.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    clock: Clock
    capture_path: Path
    signer: TokenSigner
    recorder: EventRecorder
    metrics: Metrics


def state(request: Request) -> AppState:
    s: AppState = request.app.state.steadymail
    return s


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The key of an `Authorization: Bearer <key>` header; Unauthorized for anything else
    (no header, another scheme, a bare key, a key with spaces in it)."""
    if credentials is None or any(c.isspace() for c in credentials.credentials):
        raise Unauthorized("missing 'Authorization: Bearer <api key>'")
    return credentials.credentials


def require(scope: str) -> Callable[..., AppState]:
    """A dependency that admits a request whose API key carries `scope`: 401 without a valid
    key, 403 for a valid key without the scope."""

    def check(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> AppState:
        st = state(request)
        scopes = apikeys.authenticate(st.engine, bearer_token(credentials))
        if scope not in scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        return st

    return check


Read = Depends(require("read"))
Write = Depends(require("write"))
Send = Depends(require("send"))
# Flags (fault injection included), rollouts' flag changes, quarantine release and requeue.
Admin = Depends(require("admin"))
