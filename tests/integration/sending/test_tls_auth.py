"""STARTTLS and AUTH against an aiosmtpd server that requires both."""

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
from tests.conftest import Recorder, free_port
from tests.helpers import make_campaign, run_worker_until, send_state, worker_for


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
