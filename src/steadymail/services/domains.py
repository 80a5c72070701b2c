"""Sending domains: add one (its DKIM keys and the records to publish), check its DNS, rotate
its keys. The door the CLI and the API use (deliverability/ holds the rules, store/ the rows).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.deliverability.records import (
    Algorithm,
    Finding,
    Key,
    Record,
    Verdict,
    check_dkim,
    check_dmarc,
    check_domain_name,
    check_mx,
    check_spf,
    records_for,
    verified,
)
from steadymail.errors import ValidationError
from steadymail.store import domains as store
from steadymail.store.domains import (
    ACTIVE,
    PENDING,
    RETIRED,
    RETIRING,
    SendingDomain,
    SigningKey,
)

if TYPE_CHECKING:
    from steadymail.deliverability.dns_lookup import DnsLookup

__all__ = ["SendingDomain", "SigningKey", "add", "check", "records", "rotate", "signing_keys"]


@dataclass(frozen=True)
class Setup:
    domain: SendingDomain
    records: list[Record]


@dataclass(frozen=True)
class CheckResult:
    domain: SendingDomain  # as it is after the check
    findings: list[Finding]
    verified: bool
    activated: list[str]  # selectors that start signing now
    retired: list[str]  # selectors whose records may now be removed


def _return_path(settings: Settings, name: str) -> str:
    return settings.bounce_domain.lower() or name


def _new_keys(engine: Engine, clock: Clock, settings: Settings, domain: SendingDomain) -> None:
    """A pending RSA-2048 and Ed25519 key, selectors named by date (``sm20261130r``, ``…e``)."""
    taken = {k.selector for k in domain.keys}
    stamp = time.strftime("%Y%m%d", time.gmtime(clock.now()))
    # Absolute: workers started elsewhere read the keys at these paths.
    folder = (Path(settings.data_dir) / "dkim" / domain.name).resolve()
    from steadymail.deliverability import keys as keygen  # key making: `domain add` only

    for algorithm, suffix in ((Algorithm.RSA, "r"), (Algorithm.ED25519, "e")):
        selector, n = f"sm{stamp}{suffix}", 1
        # A file left by an earlier attempt is never overwritten: the next selector instead.
        while selector in taken or (folder / f"{selector}.pem").exists():
            n += 1
            selector = f"sm{stamp}{suffix}{n}"
        taken.add(selector)
        path = folder / f"{selector}.pem"
        public = keygen.generate(algorithm, path)
        store.add_key(engine, domain.id, selector, algorithm.value, str(path), public, clock.now())


def add(engine: Engine, clock: Clock, settings: Settings, name: str) -> Setup:
    """Add ``name`` with new keys; the records to publish. ValidationError for a bad name or a
    domain already added."""
    domain_name = check_domain_name(name)
    domain_id = store.add_domain(
        engine, domain_name, _return_path(settings, domain_name), clock.now()
    )
    try:
        _new_keys(engine, clock, settings, store.get_domain(engine, domain_name))
    except BaseException:
        # No domain without keys: a second `add` would be refused as a duplicate.
        store.remove_domain(engine, domain_id)
        raise
    return records(engine, settings, domain_name)


def records(engine: Engine, settings: Settings, name: str) -> Setup:
    """The records the domain should publish now (retired keys' records may go)."""
    domain = store.get_domain(engine, check_domain_name(name))
    live = [k for k in domain.keys if k.state != RETIRED]
    return Setup(
        domain,
        records_for(
            domain.name,
            [Key(k.selector, Algorithm(k.algorithm), k.public_key) for k in live],
            domain.return_path_domain,
            settings.spf_mechanisms,
            settings.bounce_mx,
        ),
    )


def rotate(engine: Engine, clock: Clock, settings: Settings, name: str) -> Setup:
    """New pending keys beside the active ones: they sign once a check finds them published,
    and the keys they replace then retire after ``dkim_retire_after``."""
    domain = store.get_domain(engine, check_domain_name(name))
    _new_keys(engine, clock, settings, domain)
    return records(engine, settings, domain.name)


def _lookup(settings: Settings) -> DnsLookup:
    # dnspython costs every process that imports this module ~0.12 s: only a check needs it.
    from steadymail.deliverability.dns_lookup import DnsLookup

    return DnsLookup(settings.dns_resolver)


def check(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    name: str,
    lookup: DnsLookup | None = None,
) -> CheckResult:
    """Look every record up and say what is missing or wrong; pending keys found published
    start signing; the domain is verified when nothing is missing or wrong."""
    domain = store.get_domain(engine, check_domain_name(name))
    dns = lookup or _lookup(settings)
    findings: list[Finding] = []
    published: list[int] = []
    signing = 0
    for key in (k for k in domain.keys if k.state != RETIRED):
        found = dns.txt(f"{key.selector}._domainkey.{domain.name}")
        finding = check_dkim(Key(key.selector, Algorithm(key.algorithm), key.public_key), found)
        if finding.verdict is Verdict.OK:
            if key.state == PENDING:
                published.append(key.id)
            signing += key.state in (PENDING, ACTIVE)
        elif key.state == PENDING:
            # A pending key not published yet holds nothing back: it just does not sign.
            finding = Finding(finding.record, Verdict.WARNING, f"pending: {finding.detail}")
        elif key.state == RETIRING:
            finding = Finding(
                finding.record,
                Verdict.WARNING,
                f"retiring: {finding.detail}; mail it signed lately no longer verifies",
            )
        findings.append(finding)
    if not signing:
        findings.append(
            Finding("DKIM", Verdict.MISSING, "no key of this domain is published: nothing signs")
        )
    rp = domain.return_path_domain
    findings.append(check_spf(rp, dns.txt(rp), settings.spf_mechanisms))
    findings += check_dmarc(domain.name, dns.txt(f"_dmarc.{domain.name}"), rp)
    if rp != domain.name:
        findings.append(check_mx(rp, dns.mx(rp), settings.bounce_mx))
    ok = verified(findings)
    now = clock.now()
    store.record_check(engine, domain.id, now, ok, published)
    retired = store.retire_keys(engine, domain.id, now - settings.dkim_retire_after)
    activated = [k.selector for k in domain.keys if k.id in published]
    return CheckResult(store.get_domain(engine, domain.name), findings, ok, activated, retired)


def all_domains(engine: Engine) -> list[SendingDomain]:
    return store.all_domains(engine)


def signing_keys(engine: Engine) -> list[SigningKey]:
    return store.signing_keys(engine)


# Verified names per engine, read again after this many seconds: an API enqueue checks its
# From domain without a query per request.
_VERIFIED_TTL = 5.0
# Keyed by the engine itself (weakly): an id() could be reused by a later engine.
_verified: weakref.WeakKeyDictionary[Engine, tuple[float, set[str]]] = weakref.WeakKeyDictionary()


def check_sender(engine: Engine, settings: Settings, from_domain: str) -> None:
    """ValidationError unless ``from_domain`` (an A-label) is a verified sending domain, or
    unverified domains are allowed (``allow_unverified_domains``, for development; by default
    while every relay is the built-in capture server)."""
    if settings.unverified_domains_allowed():
        return
    from_domain = from_domain.lower()
    now = time.monotonic()
    cached = _verified.get(engine)
    if cached is None or now - cached[0] > _VERIFIED_TTL or from_domain not in cached[1]:
        cached = (now, store.verified_names(engine))
        _verified[engine] = cached
    if from_domain not in cached[1]:
        raise ValidationError(
            f"the From domain {from_domain} is not a verified sending domain: "
            f"`steadymail domain add {from_domain}`, publish its records, then "
            f"`steadymail domain check {from_domain}` (allow_unverified_domains = true allows "
            "any domain, for development and the capture server)"
        )
