"""Request-scoped dependencies: the app's state and API-key authentication with scopes."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import Unauthorized
from steadymail.metrics import Metrics
from steadymail.store import apikeys
from steadymail.tracking.events import EventRecorder
from steadymail.tracking.tokens import TokenSigner


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


def require(scope: str) -> Callable[..., AppState]:
    """A dependency that admits a request whose API key carries `scope`."""

    def check(request: Request, authorization: str | None = Header(default=None)) -> AppState:
        st = state(request)
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("missing 'Authorization: Bearer <api key>'")
        scopes = apikeys.authenticate(st.engine, authorization[7:].strip())
        if scope not in scopes:
            raise Unauthorized(f"this API key lacks the {scope!r} scope")
        return st

    return check


Read = Depends(require("read"))
Write = Depends(require("write"))
Send = Depends(require("send"))
