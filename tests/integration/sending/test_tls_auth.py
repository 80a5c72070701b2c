"""STARTTLS and AUTH against real aiosmtpd servers: required, offered, absent, plaintext."""

import asyncio
import datetime
import ssl
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import Engine

from steadymail.config import RelaySettings
from steadymail.domain.delivery import Outcome, Verdict
from tests.conftest import Recorder
from tests.helpers import (
    free_port,
    lone_pool,
    make_campaign,
    run_worker_until,
    send_state,
    worker_for,
)


def tls_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return ctx


def test_starttls_and_auth(engine: Engine, db_url: str, settings_for: Any, tmp_path: Path) -> None:
    logins: list[tuple[bytes, bool]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == b"relayuser"
            and data.password == b"s3cret"
        )
        logins.append((data.login, session.ssl is not None))
        return AuthResult(success=ok)

    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls_context(tmp_path),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        relay = RelaySettings(
            host="127.0.0.1",
            port=port,
            starttls=True,
            validate_certs=False,
            username="relayuser",
            password=SecretStr("s3cret"),
        )
        settings = settings_for(db_url, port, relays=[relay])
        send_id = make_campaign(engine, settings, 5)
        worker = worker_for(settings, engine)
        asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    finally:
        controller.stop()
    assert len(recorder.messages) == 5
    assert logins and all(user == b"relayuser" and over_tls for user, over_tls in logins)


class TlsSeen(Recorder):
    """Records, with each message, whether it came over TLS and who logged in."""

    def __init__(self) -> None:
        super().__init__()
        self.over_tls: list[bool] = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.over_tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append(data.login)
        return AuthResult(success=True)


def _serve(handler: TlsSeen, tmp_path: Path | None, **kw: Any) -> Controller:
    if tmp_path is not None:
        kw["tls_context"] = tls_context(tmp_path)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kw)
    controller.start()
    return controller


def _send(relay: RelaySettings) -> Verdict:
    pool = lone_pool(relay)

    async def go() -> Verdict:
        try:
            return await pool.send("a@example.com", "b@example.com", b"Subject: x\r\n\r\nhello\r\n")
        finally:
            await pool.close()

    return asyncio.run(go())


def _relay(controller: Controller, **kw: Any) -> RelaySettings:
    return RelaySettings(host="127.0.0.1", port=controller.port, validate_certs=False, **kw)


def test_starttls_is_used_when_offered_and_skipped_when_not(tmp_path: Path) -> None:
    for offered, mode, expect_tls in (
        (True, "opportunistic", True),
        (False, "opportunistic", False),
        (True, "off", False),
        (True, "require", True),
    ):
        handler = TlsSeen()
        controller = _serve(handler, tmp_path if offered else None)
        try:
            verdict = _send(_relay(controller, starttls=mode))
        finally:
            controller.stop()
        assert verdict.outcome == Outcome.SENT, (offered, mode, verdict)
        assert handler.over_tls == [expect_tls], (offered, mode)


def test_required_starttls_refuses_a_relay_without_it() -> None:
    handler = TlsSeen()
    controller = _serve(handler, None)
    try:
        verdict = _send(_relay(controller, starttls="require"))
    finally:
        controller.stop()
    assert verdict.outcome == Outcome.CONNECTION  # deferred, not bounced
    assert "STARTTLS is required" in verdict.detail
    assert handler.messages == []


def test_auth_never_goes_over_plaintext_unless_allowed(tmp_path: Path) -> None:
    creds: dict[str, Any] = dict(username="u", password=SecretStr("p"))
    handler = TlsSeen()
    plain = _serve(handler, None, authenticator=handler.authenticate, auth_require_tls=False)
    try:
        refused = _send(_relay(plain, **creds))
        allowed = _send(_relay(plain, allow_plaintext_auth=True, **creds))
    finally:
        plain.stop()
    assert refused.outcome == Outcome.CONNECTION and "plaintext" in refused.detail
    assert allowed.outcome == Outcome.SENT
    assert handler.logins == [b"u"]  # only the allowed attempt ever sent the password

    handler = TlsSeen()
    tls = _serve(handler, tmp_path, authenticator=handler.authenticate)
    try:
        verdict = _send(_relay(tls, **creds))  # opportunistic STARTTLS, then AUTH
    finally:
        tls.stop()
    assert (
        verdict.outcome == Outcome.SENT and handler.logins == [b"u"] and handler.over_tls == [True]
    )


def test_old_boolean_starttls_still_reads() -> None:
    assert RelaySettings(starttls=True).starttls == "require"
    assert RelaySettings(starttls=False).starttls == "opportunistic"
    assert RelaySettings().starttls == "opportunistic" and not RelaySettings().allow_plaintext_auth
