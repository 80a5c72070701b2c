"""The inbound unsubscribe mailbox against real SMTP clients: size limit, generic errors, and a
slow database that never stalls another session."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import Engine, create_engine, event

from steadymail.inbound.server import InboundHandler, start_inbound
from steadymail.tracking.tokens import Kind, TokenData, TokenSigner
from tests.helpers import free_port

SIGNER = TokenSigner({"k1": b"0123456789abcdef0123456789abcdef"}, "k1")
TOKEN = SIGNER.sign(TokenData(Kind.UNSUBSCRIBE, 1, 424242))
RCPT = "unsubscribe@mail.example.com"


@contextlib.contextmanager
def mailbox(engine: Engine) -> Iterator[tuple[int, InboundHandler]]:
    port = free_port()
    controller, handler = start_inbound(
        engine, SIGNER, "mail.example.com", "127.0.0.1", port, max_size=4096
    )
    try:
        yield port, handler
    finally:
        controller.stop()


def send(port: int, subject: str, body: str = "please") -> tuple[int, str]:
    """The server's final reply code and text (an exception's, when it refused)."""
    msg = f"From: a@example.com\r\nTo: {RCPT}\r\nSubject: {subject}\r\n\r\n{body}\r\n"

    async def go() -> tuple[int, str]:
        try:
            _, reply = await aiosmtplib.send(
                msg.encode(),
                sender="a@example.com",
                recipients=[RCPT],
                hostname="127.0.0.1",
                port=port,
                start_tls=False,
                timeout=30,
            )
            return 250, reply
        except aiosmtplib.SMTPResponseException as e:
            return e.code, e.message

    return asyncio.run(go())


def test_a_message_over_the_limit_is_refused(engine: Engine) -> None:
    with mailbox(engine) as (port, handler):
        code, _ = send(port, f"unsubscribe {TOKEN}", body="x" * 10_000)
    assert code == 552 and handler.processed == 0


def test_errors_are_not_echoed_to_the_client(caplog: pytest.LogCaptureFixture) -> None:
    broken = create_engine("sqlite:////nonexistent-dir/x.db")
    with mailbox(broken) as (port, handler), caplog.at_level(logging.ERROR, "steadymail.inbound"):
        code, text = send(port, f"unsubscribe {TOKEN}")
    assert code == 451 and text == "4.3.0 temporary failure, try again later"
    assert handler.errors == 1
    assert any("OperationalError" in (r.exc_text or "") for r in caplog.records)
    reply = asyncio.run(handler.handle_exception(RuntimeError("secret detail")))
    assert reply.startswith("451") and "secret" not in reply


def test_a_slow_database_does_not_stall_other_sessions(engine: Engine) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(*_: Any) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(30)

    port = free_port()
    controller, _ = start_inbound(engine, SIGNER, "mail.example.com", "127.0.0.1", port)
    event.listen(engine, "before_cursor_execute", hold)
    result: list[tuple[int, str]] = []
    first = threading.Thread(target=lambda: result.append(send(port, f"unsubscribe {TOKEN}")))
    try:
        first.start()
        assert entered.wait(30)  # the first session is inside a database call

        async def noop() -> int:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
            await client.connect()
            code = (await client.noop()).code
            await client.quit()
            return code

        assert asyncio.run(noop()) == 250  # answered while the first is still held
        assert not result
    finally:
        release.set()
        first.join(30)
        event.remove(engine, "before_cursor_execute", hold)
        controller.stop()
    assert result[0][0] == 550  # no such message: refused, now that the database answered
