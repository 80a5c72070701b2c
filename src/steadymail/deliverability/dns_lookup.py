"""DNS lookups for the domain check, through dnspython and the configured resolver."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.resolver

from steadymail.errors import ValidationError


class DnsLookup:
    """TXT and MX lookups; ``nameserver`` is ``host`` or ``host:port`` (empty: the system's)."""

    def __init__(self, nameserver: str = "", timeout: float = 5.0) -> None:
        if nameserver:
            host, _, port = (
                nameserver.rpartition(":") if ":" in nameserver else (nameserver, "", "")
            )
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = int(port) if port else 53
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout

    def _answer(self, name: str, rdtype: str) -> list[Any]:
        try:
            return list(self._resolver.resolve(name, rdtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise ValidationError(f"DNS lookup of {name} {rdtype} failed: {e}") from e

    def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined (a long key is published as several strings)."""
        return [
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rdata in self._answer(name, "TXT")
        ]

    def mx(self, name: str) -> list[str]:
        return [str(rdata.exchange) for rdata in self._answer(name, "MX")]
