"""A real DNS server for tests (dnslib, UDP and TCP on 127.0.0.1): the records a test sets,
NXDOMAIN for any other name."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import MX, QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from tests.helpers import free_port


class Zone(BaseResolver):  # type: ignore[misc]
    """``records[(name, "TXT" | "MX")]``: the values served, changed as a test goes."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}

    def set(self, name: str, rtype: str, *values: str) -> None:
        self.records[(name.rstrip(".").lower(), rtype)] = list(values)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        values = self.records.get((qname, qtype))
        if values is None and not any(name == qname for name, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in values or []:
            if qtype == "TXT":
                # A long value (an RSA key) is published as strings of at most 255 bytes.
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
            else:
                preference, host = value.split()
                reply.add_answer(RR(qname, QTYPE.MX, rdata=MX(host, int(preference)), ttl=60))
        return reply


@contextmanager
def dns_server() -> Iterator[tuple[Zone, str]]:
    """A running server and its ``host:port``."""
    zone = Zone()
    port = free_port()
    udp = DNSServer(zone, port=port, address="127.0.0.1", tcp=False)
    tcp = DNSServer(zone, port=port, address="127.0.0.1", tcp=True)
    udp.start_thread()
    tcp.start_thread()
    try:
        yield zone, f"127.0.0.1:{port}"
    finally:
        udp.stop()
        tcp.stop()
