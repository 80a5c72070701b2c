"""Sending domains through the admin API over real HTTP (uvicorn), checked against a real DNS
server (dnslib): admin scope to add, check and rotate; read scope to list."""

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from steadymail.services import apikeys
from tests.conftest import CLOCK, LiveApi
from tests.dns_server import Zone, dns_server


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Zone]:
    """The DNS server the API's settings point at (set before `live_api` builds them)."""
    with dns_server() as (served, resolver):
        monkeypatch.setenv("STEADYMAIL_DNS_RESOLVER", resolver)
        yield served


def test_domains_over_the_api(zone: Zone, live_api: LiveApi, engine: Engine) -> None:
    admin = {"Authorization": f"Bearer {live_api.key}"}
    reader = {"Authorization": "Bearer " + apikeys.create_key(engine, CLOCK, "reader", {"read"})}
    with httpx.Client(base_url=live_api.url, timeout=30) as http:
        assert (
            http.post("/v1/domains", json={"name": "example.com"}, headers=reader).status_code
            == 403
        )
        r = http.post("/v1/domains", json={"name": "Example.com"}, headers=admin)
        assert r.status_code == 201, r.text
        setup = r.json()
        assert setup["domain"]["name"] == "example.com"
        assert [k["state"] for k in setup["domain"]["keys"]] == ["pending", "pending"]
        assert (
            http.post("/v1/domains", json={"name": "example.com"}, headers=admin).status_code == 422
        )
        assert (
            http.post("/v1/domains", json={"name": "no spaces.com"}, headers=admin).status_code
            == 422
        )

        check = http.post("/v1/domains/example.com/check", headers=admin).json()
        assert check["verified"] is False
        assert {"record": "DKIM", "verdict": "missing"}.items() <= next(
            f for f in check["findings"] if f["record"] == "DKIM"
        ).items()
        for record in http.get("/v1/domains/example.com/records", headers=reader).json()["records"]:
            zone.set(record["name"], record["type"], record["value"])
        check = http.post("/v1/domains/example.com/check", headers=admin).json()
        assert check["verified"] is True and len(check["activated"]) == 2
        listed = http.get("/v1/domains", headers=reader).json()
        assert [d["name"] for d in listed] == ["example.com"]
        assert listed[0]["verified_at"] is not None

        rotated = http.post("/v1/domains/example.com/rotate", headers=admin).json()
        assert sorted(k["state"] for k in rotated["domain"]["keys"]) == [
            "active", "active", "pending", "pending",
        ]  # fmt: skip
        assert http.post("/v1/domains/nowhere.example/check", headers=admin).status_code == 404
        assert http.post("/v1/domains/example.com/check", headers=reader).status_code == 403
