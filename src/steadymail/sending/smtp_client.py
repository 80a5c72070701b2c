"""The hot path's SMTP client: one message per transaction, MAIL/RCPT/DATA pipelined (RFC 2920).

Written by hand because the profile demanded it: aiosmtplib spends ~0.84 ms of CPU per 27 KB
message (a round trip per command, three regular-expression passes over every body) where this
client spends ~0.16 ms (measured on this machine, `docs/design-notes.md`). It only speaks to
relays that need neither TLS nor AUTH (a local MTA, a relay on a private network): the pool
hands every other relay, and any that offers STARTTLS under a policy that wants it, to
aiosmtplib, which keeps the TLS and AUTH paths.

It raises aiosmtplib's exceptions with aiosmtplib's meanings, so the pool's reading of a reply
(`transport._converse`) is the same for both clients.
"""

import asyncio
import re

from aiosmtplib import (
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

# A reply line may be long (RFC 5321 allows 512 octets; some servers send more): bounded all
# the same, so a hostile server cannot make us buffer without end.
_LINE_LIMIT = 64 * 1024
_BARE = re.compile(rb"\r\n|\r|\n")


class PipelinedSMTP:
    """One plaintext SMTP connection, opened by `connect` (greeting and EHLO read)."""

    def __init__(self, host: str, port: int, timeout: float, local_hostname: str) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._local = local_hostname
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.extensions: set[str] = set()

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port, limit=_LINE_LIMIT),
                self._timeout,
            )
        except TimeoutError as e:
            raise SMTPTimeoutError(f"connecting to {self._host}:{self._port} timed out") from e
        code, message = await self._reply()
        if code != 220:
            self.close()
            raise SMTPResponseException(code, message)
        self._write(f"EHLO {self._local}\r\n".encode())
        code, message = await self._reply()
        if code != 250:
            self.close()
            raise SMTPResponseException(code, message)
        # The first line names the server; each further one is an extension keyword.
        self.extensions = {
            line.split(" ", 1)[0].upper() for line in message.split("\n")[1:] if line
        }

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    async def sendmail(
        self,
        sender: str,
        recipients: list[str],
        data: bytes,
        mail_options: tuple[str, ...] | list[str] = (),
    ) -> tuple[dict[str, tuple[int, str]], str]:
        """Deliver one message to one recipient: ({}, the final reply's text) when accepted,
        else the aiosmtplib exception for where it was refused."""
        if len(recipients) != 1:
            raise ValueError("one recipient per transaction")
        if "SMTPUTF8" in mail_options and not self.supports("SMTPUTF8"):
            raise SMTPNotSupported("the relay does not support SMTPUTF8")
        recipient = recipients[0]
        options = "".join(f" {o}" for o in mail_options)
        commands = [
            f"MAIL FROM:<{sender}>{options}\r\n".encode(),
            f"RCPT TO:<{recipient}>\r\n".encode(),
            b"DATA\r\n",
        ]
        if self.supports("PIPELINING"):
            self._write(b"".join(commands))
            replies = [await self._reply() for _ in commands]
        else:
            replies = []
            for command in commands:
                self._write(command)
                replies.append(await self._reply())
                if replies[-1][0] >= 400:
                    break
        mail, rcpt, data_reply = [*replies, (503, "not sent"), (503, "not sent")][:3]
        if mail[0] != 250:
            await self._reset(data_reply)
            raise SMTPSenderRefused(mail[0], mail[1], sender)
        if rcpt[0] not in (250, 251):
            await self._reset(data_reply)
            raise SMTPRecipientsRefused([SMTPRecipientRefused(rcpt[0], rcpt[1], recipient)])
        if data_reply[0] != 354:
            await self._reset(data_reply)
            raise SMTPDataError(data_reply[0], data_reply[1])
        self._write(_dot_stuffed(data))
        code, message = await self._reply()
        if code != 250:
            raise SMTPDataError(code, message)
        return {}, message

    async def _reset(self, data_reply: tuple[int, str]) -> None:
        """After a refused MAIL or RCPT, end the transaction so the connection can be reused.
        A DATA the server accepted anyway (354) is ended with an empty body it then refuses."""
        if data_reply[0] == 354:
            self._write(b".\r\n")
            await self._reply()
        self._write(b"RSET\r\n")
        await self._reply()

    async def quit(self) -> None:
        try:
            self._write(b"QUIT\r\n")
            await self._reply()
        finally:
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise SMTPServerDisconnected("the connection is closed")
        self._writer.write(data)

    async def _reply(self) -> tuple[int, str]:
        """One reply, multi-line ones joined by newlines: (code, text)."""
        assert self._reader is not None
        lines: list[str] = []
        while True:
            try:
                raw = await asyncio.wait_for(self._reader.readline(), self._timeout)
            except TimeoutError as e:
                self.close()
                raise SMTPTimeoutError("the relay did not answer in time") from e
            except (asyncio.LimitOverrunError, ValueError) as e:
                self.close()
                raise SMTPServerDisconnected("the relay sent a reply line too long") from e
            except OSError as e:
                # A reset rather than a clean close: the same for the pool (a new connection).
                self.close()
                raise SMTPServerDisconnected(f"the connection failed: {e!r}") from e
            if not raw.endswith(b"\n"):
                self.close()
                raise SMTPServerDisconnected("the relay closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                self.close()
                raise SMTPServerDisconnected(f"malformed reply from the relay: {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA body: CRLF-terminated, each line starting with "." doubled (RFC 5321 4.5.2),
    then the ending "." line. The composer writes CRLF line endings; a bare CR or LF (counted
    in C, not searched for) is normalised as the RFC requires."""
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\r\n"):
        data = _BARE.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
