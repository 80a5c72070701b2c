"""The pipelined SMTP client against real servers: aiosmtpd (no PIPELINING advertised: one
command at a time), Postfix's smtp-sink where it is installed (PIPELINING), and a scripted
server for the replies and failures a relay can give."""

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiosmtplib import (
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from steadymail.sending.smtp_client import PipelinedSMTP, _dot_stuffed
from tests.conftest import Recorder
from tests.helpers import need

BODY = (
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n"
    b".starts with a dot\r\nmiddle\r\n..two dots\r\n.\r\nend"
)


def test_dot_stuffing_and_line_endings() -> None:
    out = _dot_stuffed(BODY)
    assert out.endswith(b"\r\nend\r\n.\r\n")
    assert b"\r\n..starts" in out and b"\r\n...two" in out and b"\r\n..\r\n" in out
    assert _dot_stuffed(b"a\nb\rc\r\n") == b"a\r\nb\r\nc\r\n.\r\n"  # bare CR and LF normalised
    assert _dot_stuffed(b".x") == b"..x\r\n.\r\n"


def test_a_message_through_aiosmtpd_arrives_byte_for_byte(
    smtp_server: tuple[Recorder, int],
) -> None:
    recorder, port = smtp_server

    async def go() -> None:
        c = PipelinedSMTP("127.0.0.1", port, 5, "test.local")
        await c.connect()
        assert not c.supports("PIPELINING")  # aiosmtpd: one command at a time
        for i in range(3):
            errors, reply = await c.sendmail("a@example.com", [f"b{i}@example.com"], BODY)
            assert errors == {} and reply
        await c.quit()

    asyncio.run(go())
    assert len(recorder.messages) == 3
    # What the server stored: our bytes (it un-stuffs the dots; line endings as it keeps them).
    got = recorder.messages[0]
    assert got.rcpt == "b0@example.com" and got.mail_from == "a@example.com"
    assert b".starts with a dot" in got.data and b"\n..two dots" in got.data
    assert got.data.rstrip(b"\r\n").endswith(b"end")


def test_refusals_raise_what_aiosmtplib_raises_and_the_connection_goes_on(
    smtp_server: tuple[Recorder, int],
) -> None:
    recorder, port = smtp_server
    recorder.rcpt_script = lambda rcpt, n: "550 5.1.1 no such user" if "bad" in rcpt else None
    recorder.data_script = lambda rcpt, n: "452 4.3.1 full" if "full" in rcpt else None

    async def go() -> None:
        c = PipelinedSMTP("127.0.0.1", port, 5, "test.local")
        await c.connect()
        with pytest.raises(SMTPRecipientsRefused) as refused:
            await c.sendmail("a@example.com", ["bad@example.com"], BODY)
        assert refused.value.recipients[0].code == 550
        with pytest.raises(SMTPDataError) as full:
            await c.sendmail("a@example.com", ["full@example.com"], BODY)
        assert full.value.code == 452
        # aiosmtpd offers SMTPUTF8: an internationalised address goes through.
        await c.sendmail("a@example.com", ["ok@example.com"], BODY, ["SMTPUTF8"])
        await c.quit()

    asyncio.run(go())
    assert [m.rcpt for m in recorder.messages] == ["ok@example.com"]


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(script: Script) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _greet(r: asyncio.StreamReader, w: asyncio.StreamWriter, *ext: bytes) -> None:
    w.write(b"220 scripted ESMTP\r\n")
    await r.readline()
    w.write(
        b"250-scripted\r\n" + b"".join(b"250-" + e + b"\r\n" for e in ext) + b"250 8BITMIME\r\n"
    )


def test_pipelined_commands_go_in_one_write_and_a_refused_mail_resets() -> None:
    seen: list[bytes] = []

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _greet(r, w, b"PIPELINING")
        # The three commands arrive together: read them, then answer all three.
        chunk = await r.read(4096)
        seen.append(chunk)
        w.write(b"550 5.7.1 sender refused\r\n503 5.5.1 no sender\r\n503 5.5.1 no rcpt\r\n")
        seen.append(await r.readline())  # RSET
        w.write(b"250 reset\r\n")
        chunk = await r.read(4096)
        w.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            data += await r.read(65536)
        seen.append(data)
        w.write(b"250-2.0.0 queued\r\n250 as ABC\r\n")
        await r.readline()
        w.close()

    async def go() -> str:
        server, port = await _serve(script)
        async with server:
            c = PipelinedSMTP("127.0.0.1", port, 5, "test.local")
            await c.connect()
            assert c.supports("pipelining")
            # Not offered: refused before a byte is sent (the scripted server would not know).
            with pytest.raises(SMTPNotSupported):
                await c.sendmail("a@example.com", ["b@example.com"], BODY, ["SMTPUTF8"])
            with pytest.raises(SMTPSenderRefused):
                await c.sendmail("a@example.com", ["b@example.com"], BODY)
            _, reply = await c.sendmail("a@example.com", ["b@example.com"], BODY)
            c.close()
            return reply

    reply = asyncio.run(go())
    assert seen[0].count(b"\r\n") == 3 and seen[0].startswith(b"MAIL FROM:<a@example.com>")
    assert seen[1] == b"RSET\r\n"
    assert seen[2] == _dot_stuffed(BODY)
    assert reply == "2.0.0 queued\nas ABC"  # a multi-line reply, joined


@pytest.mark.parametrize(
    "behaviour", ["hang-up-before-data-reply", "silence", "garbage", "endless-line"]
)
def test_a_relay_that_fails_mid_transaction_is_a_connection_error(behaviour: str) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _greet(r, w, b"PIPELINING")
        await r.read(4096)
        w.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
        while not (await r.read(65536)).endswith(b"\r\n.\r\n"):
            pass
        if behaviour == "hang-up-before-data-reply":
            w.close()
        elif behaviour == "garbage":
            w.write(b"hello there\r\n")
        elif behaviour == "endless-line":
            w.write(b"250 " + b"x" * 200_000 + b"\r\n")
        await asyncio.sleep(2)
        w.close()

    async def go() -> None:
        server, port = await _serve(script)
        async with server:
            c = PipelinedSMTP("127.0.0.1", port, 0.5, "test.local")
            await c.connect()
            expected = SMTPTimeoutError if behaviour == "silence" else SMTPServerDisconnected
            with pytest.raises(expected):
                await c.sendmail("a@example.com", ["b@example.com"], BODY)
            # The connection is closed: the pool opens a new one rather than reuse it.
            with pytest.raises(SMTPServerDisconnected):
                await c.sendmail("a@example.com", ["b@example.com"], BODY)

    asyncio.run(go())


@pytest.fixture
def sink_port() -> AsyncIterator[int]:
    need("POSTFIX", shutil.which("smtp-sink") is not None, "smtp-sink (scripts/ensure-postfix)")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
    from net import free_port, start_sink

    port = free_port()
    sink = start_sink(port)
    yield port  # type: ignore[misc]
    sink.terminate()
    sink.wait(10)


def test_smtp_sink_takes_pipelined_transactions(sink_port: int) -> None:
    async def go() -> None:
        c = PipelinedSMTP("127.0.0.1", sink_port, 5, "test.local")
        await c.connect()
        assert c.supports("PIPELINING")
        for i in range(50):
            await c.sendmail("a@example.com", [f"b{i}@example.com"], BODY)
        await c.quit()

    asyncio.run(go())
