"""Sending domains against a real DNS server (dnslib): add, publish, check record by record,
keys that sign only once published, rotation with the old key kept until its mail is old."""

import asyncio
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.deliverability.dns_lookup import DnsLookup
from steadymail.errors import NotFound, ValidationError
from steadymail.services import campaigns, csv_import, domains, templates, transactional
from tests.conftest import Recorder
from tests.dns_server import Zone, dns_server
from tests.helpers import make_campaign, run_worker_until, send_state, worker_for


class Clock:
    def __init__(self) -> None:
        self.t = 1_790_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def dns_module() -> Iterator[tuple[Zone, str]]:
    # One server for the module: stopping one waits out its polling loop (~1 s).
    with dns_server() as served:
        yield served


@pytest.fixture
def dns(dns_module: tuple[Zone, str]) -> tuple[Zone, str]:
    """The module's DNS server, serving nothing at the start of each test."""
    dns_module[0].records.clear()
    return dns_module


def domain_settings(tmp_path: Path, resolver: str, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", dns_resolver=resolver, **kw)  # type: ignore[arg-type]


def publish(zone: Zone, setup: domains.Setup) -> None:
    for r in setup.records:
        zone.set(r.name, r.type, r.value)


def zone_lookup(zone: Zone) -> Callable[..., bytes]:
    """dkimpy's ``dnsfunc``: the TXT record the test's zone serves for a name."""

    def txt(name: bytes, timeout: int = 5) -> bytes:
        values = zone.records.get((name.decode().rstrip(".").lower(), "TXT"), [])
        return values[0].encode() if values else b""

    return txt


def verdicts(result: domains.CheckResult) -> dict[str, str]:
    return {f.record: f.verdict.value for f in result.findings}


def test_add_publish_check(engine: Engine, tmp_path: Path, dns: tuple[Zone, str]) -> None:
    zone, resolver = dns
    settings = domain_settings(tmp_path, resolver)
    clock = Clock()
    setup = domains.add(engine, clock, settings, "Example.COM")
    assert setup.domain.name == "example.com"
    by_type = [(r.name, r.type) for r in setup.records]
    rsa, ed = setup.domain.keys
    assert (rsa.algorithm, ed.algorithm) == ("rsa-sha256", "ed25519-sha256")
    assert by_type == [
        (f"{rsa.selector}._domainkey.example.com", "TXT"),
        (f"{ed.selector}._domainkey.example.com", "TXT"),
        ("example.com", "TXT"),
        ("_dmarc.example.com", "TXT"),
    ]
    assert setup.records[0].value.startswith("v=DKIM1; k=rsa; p=MII")
    assert setup.records[1].value.startswith("v=DKIM1; k=ed25519; p=")
    assert setup.records[2].value == "v=spf1 a mx ~all"
    for key in setup.domain.keys:
        assert stat.S_IMODE(Path(key.key_file).stat().st_mode) == 0o600
    with pytest.raises(ValidationError, match="already added"):
        domains.add(engine, clock, settings, "example.com")
    for bad in ("localhost", "exa mple.com", "-a.example", "a..b", "x" * 64 + ".com"):
        with pytest.raises(ValidationError):
            domains.add(engine, clock, settings, bad)

    # Nothing published yet: nothing signs, and the check says what is missing.
    result = domains.check(engine, clock, settings, "example.com")
    assert not result.verified
    assert verdicts(result) == {
        f"DKIM {rsa.selector} (rsa)": "warning",  # pending keys hold nothing back
        f"DKIM {ed.selector} (ed25519)": "warning",
        "DKIM": "missing",
        "SPF example.com": "missing",
        "DMARC _dmarc.example.com": "missing",
        "alignment": "ok",
    }
    assert domains.signing_keys(engine) == []

    publish(zone, setup)
    result = domains.check(engine, clock, settings, "example.com")
    assert result.verified, result.findings
    assert result.activated == [rsa.selector, ed.selector]
    assert {(k.selector, k.algorithm) for k in domains.signing_keys(engine)} == {
        (rsa.selector, "rsa-sha256"),
        (ed.selector, "ed25519-sha256"),
    }
    assert result.domain.verified_at == clock.t

    # Wrong records, each named: another key at the selector, two SPF records, no DMARC policy.
    other = domains.add(engine, clock, settings, "other.example")
    zone.set(f"{rsa.selector}._domainkey.example.com", "TXT", other.records[0].value)
    zone.set("example.com", "TXT", "v=spf1 a ~all", "v=spf1 mx ~all")
    zone.set("_dmarc.example.com", "TXT", "v=DMARC1; rua=mailto:d@example.com")
    result = domains.check(engine, clock, settings, "example.com")
    assert not result.verified
    found = {f.record: (f.verdict.value, f.detail) for f in result.findings}
    assert found[f"DKIM {rsa.selector} (rsa)"] == (
        "wrong",
        "the published public key is not this key's",
    )
    assert found["SPF example.com"][0] == "wrong" and "merge them" in found["SPF example.com"][1]
    assert found["DMARC _dmarc.example.com"] == ("wrong", "p=(absent): not a policy")
    assert domains.records(engine, settings, "example.com").domain.verified_at is None


def test_rotation_signs_with_the_new_key_once_published(
    engine: Engine, tmp_path: Path, dns: tuple[Zone, str]
) -> None:
    zone, resolver = dns
    settings = domain_settings(tmp_path, resolver, dkim_retire_after=7 * 86400)
    clock = Clock()
    first = domains.add(engine, clock, settings, "example.com")
    publish(zone, first)
    assert domains.check(engine, clock, settings, "example.com").verified
    old = {k.selector for k in domains.signing_keys(engine)}

    clock.t += 86400
    rotated = domains.rotate(engine, clock, settings, "example.com")
    new = {k.selector for k in rotated.domain.keys} - old
    assert len(new) == 2
    # Not published yet: the old keys keep signing, the domain stays verified.
    result = domains.check(engine, clock, settings, "example.com")
    assert result.verified and result.activated == []
    assert {k.selector for k in domains.signing_keys(engine)} == old

    publish(zone, rotated)
    result = domains.check(engine, clock, settings, "example.com")
    assert result.verified and set(result.activated) == new
    assert {k.selector for k in domains.signing_keys(engine)} == new
    states = {k.selector: k.state for k in result.domain.keys}
    assert {states[s] for s in old} == {"retiring"}
    # The retiring keys' records are still to be published: mail they signed is being read.
    assert {r.name.split(".")[0] for r in rotated.records if "_domainkey" in r.name} == old | new

    clock.t += 8 * 86400
    result = domains.check(engine, clock, settings, "example.com")
    assert set(result.retired) == old
    left = domains.records(engine, settings, "example.com").records
    assert {r.name.split(".")[0] for r in left if "_domainkey" in r.name} == new


def test_a_return_path_of_its_own_needs_its_mx_and_alignment(
    engine: Engine, tmp_path: Path, dns: tuple[Zone, str]
) -> None:
    zone, resolver = dns
    settings = domain_settings(
        tmp_path, resolver, bounce_domain="bounces.example.com", bounce_mx="mx.example.net"
    )
    clock = Clock()
    setup = domains.add(engine, clock, settings, "example.com")
    assert ("bounces.example.com", "MX", "10 mx.example.net.") in [
        (r.name, r.type, r.value) for r in setup.records
    ]
    assert ("bounces.example.com", "TXT", "v=spf1 a mx ~all") in [
        (r.name, r.type, r.value) for r in setup.records
    ]
    publish(zone, setup)
    result = domains.check(engine, clock, settings, "example.com")
    assert result.verified
    assert verdicts(result)["MX bounces.example.com"] == "ok"
    assert verdicts(result)["alignment"] == "ok"
    zone.set("bounces.example.com", "MX", "10 elsewhere.example.org.")
    result = domains.check(engine, clock, settings, "example.com")
    assert not result.verified and verdicts(result)["MX bounces.example.com"] == "wrong"

    # A return path under another domain: DMARC can only pass through DKIM, said as a warning.
    unaligned = domain_settings(tmp_path / "b", resolver, bounce_domain="bounces.other.net")
    setup = domains.add(engine, clock, unaligned, "shop.example")
    publish(zone, setup)
    result = domains.check(engine, clock, unaligned, "shop.example")
    assert result.verified and verdicts(result)["alignment"] == "warning"


def test_unknown_domain_and_an_unreachable_resolver(engine: Engine, tmp_path: Path) -> None:
    settings = domain_settings(tmp_path, "127.0.0.1:9")
    with pytest.raises(NotFound, match="domain add"):
        domains.check(engine, Clock(), settings, "nowhere.example")
    domains.add(engine, Clock(), settings, "example.com")
    with pytest.raises(ValidationError, match=r"DNS lookup of .* failed"):
        domains.check(engine, Clock(), settings, "example.com", DnsLookup("127.0.0.1:9", 0.5))


def test_a_verified_domain_signs_campaigns_with_both_keys(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    tmp_path: Path,
    dns: tuple[Zone, str],
) -> None:
    zone, resolver = dns
    recorder, port = smtp_server
    settings = settings_for(db_url, port, dns_resolver=resolver)
    clock = Clock()
    setup = domains.add(engine, clock, settings, "example.com")

    # Added, not yet published: a worker started now does not sign with its keys.
    send_id = make_campaign(engine, settings, 2, list_name="before")
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert all(b"DKIM-Signature" not in m.data for m in recorder.messages)

    publish(zone, setup)
    assert domains.check(engine, clock, settings, "example.com").verified
    recorder.messages.clear()
    send_id = make_campaign(engine, settings, 2, list_name="after")
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert len(recorder.messages) == 2

    txt = zone_lookup(zone)
    for m in recorder.messages:
        signatures = [
            h
            for h in m.data.split(b"\r\n\r\n")[0].split(b"\r\n")
            if h.startswith(b"DKIM-Signature")
        ]
        assert len(signatures) == 2  # RSA and Ed25519 (RFC 8463 asks for both)
        for index in range(2):
            # dkimpy, an implementation other than ours, checks each against the zone.
            assert dkim.DKIM(m.data).verify(idx=index, dnsfunc=txt)


def test_sends_refuse_a_from_domain_that_is_not_verified(
    engine: Engine, tmp_path: Path, dns: tuple[Zone, str]
) -> None:
    zone, resolver = dns
    relay = [{"host": "127.0.0.1", "port": 2600}]  # a real relay, not the capture server
    strict = domain_settings(tmp_path, resolver, relays=relay, allow_unverified_domains=None)
    assert not strict.unverified_domains_allowed()
    # The embedded defaults (every relay the capture server) and an explicit setting allow.
    assert domain_settings(
        tmp_path, resolver, allow_unverified_domains=None
    ).unverified_domains_allowed()
    assert domain_settings(
        tmp_path, resolver, relays=relay, allow_unverified_domains=True
    ).unverified_domains_allowed()

    clock = Clock()
    rows = b"email,first_name\nann@example.org,Ann\n"
    csv_import.import_contacts(engine, clock, rows, "news")
    templates.create_template(engine, clock, "t", "Hi", "<p>Hi {{ first_name }}</p>", "Hi")
    campaign = {
        "name": "c",
        "list_name": "news",
        "template": "t",
        "from_addr": "News <news@example.com>",
    }
    with pytest.raises(ValidationError, match=r"example\.com is not a verified sending domain"):
        campaigns.create_campaign(engine, clock, strict, **campaign)
    with pytest.raises(ValidationError, match="not a verified sending domain"):
        transactional.enqueue(
            engine, clock, strict, to=["ann@example.org"], subject="Receipt", text="Thanks",
            from_addr="shop@example.com",
        )  # fmt: skip

    setup = domains.add(engine, clock, strict, "example.com")
    publish(zone, setup)
    assert domains.check(engine, clock, strict, "example.com").verified
    send_id = campaigns.create_campaign(engine, clock, strict, **campaign)
    # Its records gone, the next check unverifies the domain: the draft no longer starts.
    zone.records.clear()
    assert not domains.check(engine, clock, strict, "example.com").verified
    domains._verified.clear()  # the 5 s cache of verified names, as if 5 s had passed
    with pytest.raises(ValidationError, match="not a verified sending domain"):
        campaigns.start(engine, clock, strict, send_id)


@pytest.mark.parametrize("tracking", ["v1", "off"])
def test_transactional_and_campaign_mail_verify_with_and_without_tracking(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    dns: tuple[Zone, str],
    tracking: str,
) -> None:
    zone, resolver = dns
    recorder, port = smtp_server
    settings = settings_for(
        db_url,
        port,
        dns_resolver=resolver,
        tracking_version=tracking,
        allow_unverified_domains=False,
    )
    clock = Clock()
    publish(zone, domains.add(engine, clock, settings, "example.com"))
    assert domains.check(engine, clock, settings, "example.com").verified
    send_id = make_campaign(
        engine, settings, 1, html='<p>Hi {{ first_name }} <a href="https://example.com/a">a</a></p>'
    )
    transactional.enqueue(
        engine,
        clock,
        settings,
        to=["ann@example.org"],
        subject="Receipt {{ n }}",
        html='<p>Order {{ n }}: <a href="https://example.com/o">see it</a></p>',
        text="Order {{ n }}: https://example.com/o",
        variables={"n": "7"},
        from_addr="Shop <shop@example.com>",
    )
    worker = worker_for(settings, engine)
    asyncio.run(
        run_worker_until(
            worker,
            lambda: (
                send_state(engine, send_id) == "completed"
                and any(m.rcpt == "ann@example.org" for m in recorder.messages)
            ),
        )
    )

    txt = zone_lookup(zone)
    assert {m.rcpt for m in recorder.messages} == {"user0@example.com", "ann@example.org"}
    for m in recorder.messages:
        assert (b"/t/c/" in m.data) == (tracking == "v1")
        for index in range(2):
            assert dkim.DKIM(m.data).verify(idx=index, dnsfunc=txt), (m.rcpt, index)


def test_a_check_racing_another_never_retires_the_key_it_activates(
    engine: Engine, tmp_path: Path, dns: tuple[Zone, str]
) -> None:
    """Two checks finding the same new key published: whichever writes second changes nothing
    (it used to retire the key the first had just activated)."""
    from steadymail.store import domains as store

    zone, resolver = dns
    settings = domain_settings(tmp_path, resolver)
    clock = Clock()
    publish(zone, domains.add(engine, clock, settings, "example.com"))
    assert domains.check(engine, clock, settings, "example.com").verified
    rotated = domains.rotate(engine, clock, settings, "example.com")
    new = [k.id for k in rotated.domain.keys if k.state == "pending"]
    # Both checks saw the keys pending; each writes its finding in turn.
    store.record_check(engine, rotated.domain.id, clock.now(), True, new)
    store.record_check(engine, rotated.domain.id, clock.now(), True, new)
    states = {k.id: k.state for k in store.get_domain(engine, "example.com").keys}
    assert [states[i] for i in new] == ["active", "active"]
    assert sorted(states.values()) == ["active", "active", "retiring", "retiring"]


def test_keys_are_absolute_and_an_unusable_one_is_skipped(
    engine: Engine, tmp_path: Path, dns: tuple[Zone, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from steadymail.sending.dkim_signer import DkimSigner
    from steadymail.services.runtime import _domain_keys

    zone, resolver = dns
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("relative-data"), dns_resolver=resolver)
    clock = Clock()
    publish(zone, domains.add(engine, clock, settings, "example.com"))
    publish(zone, domains.add(engine, clock, settings, "other.example"))
    for name in ("example.com", "other.example"):
        assert domains.check(engine, clock, settings, name).verified
    keys = domains.signing_keys(engine)
    assert all(Path(k.key_file).is_absolute() for k in keys)
    broken = next(k for k in keys if k.domain == "other.example")
    Path(broken.key_file).write_bytes(b"not a key")
    signer = DkimSigner([], _domain_keys(engine))
    usable = [k for loaded in signer._keys.values() for k in loaded]
    assert {(k.domain, k.selector) for k in usable} == {
        (k.domain, k.selector)
        for k in keys
        if k.selector != broken.selector or k.domain != "other.example"
    }
    # A key configured by hand (`dkim` in the config) that cannot be loaded stops the start.
    with pytest.raises(ValueError):
        DkimSigner(_domain_keys(engine))
