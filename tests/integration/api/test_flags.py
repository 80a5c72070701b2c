"""Flags through the region API: validated, with history; workers read them at claim time,
report them in heartbeats, and alerts carry the values in force."""

import asyncio

import httpx
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import Engine, select

from steadymail.monitor.service import Monitor
from steadymail.monitor.signals import Signal
from steadymail.store import alerts
from steadymail.store.schema import instances
from tests.conftest import CLOCK, LiveApi, Recorder
from tests.helpers import make_campaign, run_worker_until, worker_for


def test_flags_are_typed_validated_and_kept_in_history(live_api: LiveApi) -> None:
    auth = {"Authorization": f"Bearer {live_api.key}"}
    url = live_api.url + "/v1/flags"
    assert httpx.put(url + "/tracking.version", json={"value": "v2", "by": "x"}).status_code == 401
    r = httpx.put(
        url + "/tracking.version",
        json={"value": "v2", "by": "alice", "reason": "try v2"},
        headers=auth,
    )
    assert r.status_code == 200 and r.json() == {
        "name": "tracking.version",
        "value": "v2",
        "previous": None,
        "released": 0,  # not a revert
    }
    bad = httpx.put(url + "/tracking.version", json={"value": "v9", "by": "alice"}, headers=auth)
    assert bad.status_code == 422 and "tracking.version" in bad.json()["detail"]
    unknown = httpx.put(url + "/no.such", json={"value": 1, "by": "alice"}, headers=auth)
    assert unknown.status_code == 422 and "unknown flag" in unknown.json()["detail"]
    fault = httpx.put(
        url + "/fault.worker_exit", json={"value": {"every": 20}, "by": "bob"}, headers=auth
    )
    assert fault.json()["value"] == {"every": 20.0, "after": 0.0}
    httpx.put(url + "/fault.worker_exit", json={"value": None, "by": "bob"}, headers=auth)
    listed = httpx.get(url, headers=auth).json()
    assert listed["flags"] == {"tracking.version": "v2"}
    assert set(listed["known"]) == {"tracking.version", "fault.worker_exit", "fault.tracking_crash"}
    history = httpx.get(url + "/history", headers=auth).json()
    assert [(h["name"], h["value"], h["by"]) for h in history] == [
        ("fault.worker_exit", None, "bob"),
        ("fault.worker_exit", {"every": 20.0, "after": 0.0}, "bob"),
        ("tracking.version", "v2", "alice"),
    ]


def test_workers_pick_a_flag_up_and_report_it(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _port = smtp_server
    auth = {"Authorization": f"Bearer {live_api.key}"}
    settings = live_api.settings
    assert settings.tracking_version == "v1"
    html = '<p>Hello {{ first_name }} <a href="https://example.com/a">a link</a></p>'
    make_campaign(engine, settings, 3, list_name="before", html=html)
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: recorder.count() == 3))
    assert all(b"/t/c/" in m.data for m in recorder.messages)  # v1: links rewritten

    r = httpx.put(
        live_api.url + "/v1/flags/tracking.version",
        json={"value": "off", "by": "alice"},
        headers=auth,
    )
    assert r.status_code == 200
    make_campaign(engine, settings, 3, list_name="after", html=html)
    worker = worker_for(settings, engine)

    def reported() -> bool:
        with engine.connect() as conn:
            flags = conn.execute(
                select(instances.c.flags).where(instances.c.instance_id == worker.instance_id)
            ).scalar()
        return recorder.count() == 6 and flags == {"tracking.version": "off"}

    asyncio.run(run_worker_until(worker, reported))
    assert not any(b"/t/c/" in m.data for m in recorder.messages[3:])  # off: links left alone

    monitor = Monitor(settings, engine, CLOCK, lambda to, subject, text: None)
    monitor.tick()
    monitor.apply(
        [Signal("test:flags", "service_restarted", "critical", "a restart", {"slot": "w"})]
    )
    fired = [a for a in alerts.listing(engine) if a.fingerprint == "test:flags"]
    assert fired[0].labels["flags"] == {"tracking.version": "off"}
    exported = generate_latest(REGISTRY).decode()
    assert (
        'steadymail_flag_info{flag="tracking.version",region="R1",value="\\"off\\""} 1.0'
        in exported
    )
