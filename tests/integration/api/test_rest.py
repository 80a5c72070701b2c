"""The REST API over real HTTP (uvicorn), on SQLite and PostgreSQL."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import Engine

from steadymail.store import apikeys
from tests.conftest import CLOCK, LiveApi, Recorder
from tests.helpers import run_worker_until, send_state, worker_for


def client(api: LiveApi, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {key or api.key}"}, timeout=30
    )


def test_keys_are_required_and_scoped(live_api: LiveApi, engine: Engine) -> None:
    assert httpx.get(live_api.url + "/v1/sends").status_code == 401
    assert client(live_api, "sm_nope_nope").get("/v1/sends").status_code == 401
    send_only = apikeys.create_key(engine, "app", {"send"}, CLOCK.now())
    with client(live_api, send_only) as c:
        r = c.post("/v1/templates", json={"name": "t", "subject": "s", "text": "x"})
        assert r.status_code == 403 and "write" in r.json()["detail"]
        assert (
            c.post(
                "/v1/messages", json={"to": "a@example.com", "subject": "s", "text": "x"}
            ).status_code
            == 202
        )


def test_campaign_over_http(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    csv = "email,first_name\n" + "".join(f"u{i}@example.com,U{i}\n" for i in range(30))
    csv += "broken,row\nu1@example.com,Dup\n"
    with client(live_api) as c:
        report = c.post("/v1/lists/news/import", content=csv.encode()).json()
        assert report["imported"] == 30
        assert [e["line"] for e in report["errors"]] == [32, 33]
        bad = c.post("/v1/templates", json={"name": "bad", "subject": "s", "html": "{% for %}"})
        assert bad.status_code == 422 and "html part, line 1" in bad.json()["detail"]
        c.post(
            "/v1/templates", json={"name": "uses-coupon", "subject": "Hi", "html": "{{ coupon }}"}
        ).raise_for_status()
        refused = c.post(
            "/v1/campaigns", json={"name": "c0", "list": "news", "template": "uses-coupon"}
        )
        assert refused.status_code == 422 and "coupon" in refused.json()["detail"]
        c.post(
            "/v1/templates",
            json={
                "name": "hello",
                "subject": "Hi {{ first_name }}",
                "html": "<b>{{ first_name }}</b>",
            },
        ).raise_for_status()
        send = c.post(
            "/v1/campaigns",
            json={
                "name": "c1",
                "list": "news",
                "template": "hello",
                "from": "News <news@example.com>",
            },
        ).json()
        started = c.post(f"/v1/sends/{send['id']}/start").json()
        assert started["messages"] == 30
        assert c.post(f"/v1/sends/{send['id']}/start").status_code == 409
        worker = worker_for(live_api.settings, engine)
        asyncio.run(run_worker_until(worker, lambda: send_state(engine, send["id"]) == "completed"))
        status = c.get(f"/v1/sends/{send['id']}").json()
        assert status["state"] == "completed" and status["counts"] == {"sent": 30}
    assert {m.rcpt for m in recorder.messages} == {f"u{i}@example.com" for i in range(30)}


def test_transactional_messages_and_validation(
    live_api: LiveApi, engine: Engine, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    with client(live_api) as c:
        bad: list[dict[str, Any]] = [
            {"to": "a@example.com", "subject": "x\r\nBcc: v@example.com", "text": "t"},
            {"to": "a@example.com", "subject": "Hi {{ name }}", "text": "t"},
            {"to": "not an address", "subject": "s", "text": "t"},
            {
                "to": "a@example.com",
                "subject": "s",
                "text": "t",
                "headers": {"X-A": "b\nBcc: v@example.com"},
            },
        ]
        for body in bad:
            r = c.post("/v1/messages", json=body)
            assert r.status_code == 422, body
        r = c.post(
            "/v1/messages",
            json={
                "to": ["Zoë <zoe@example.com>", "bo@example.com"],
                "subject": "Code {{ code }}",
                "text": "Your code: {{ code }}",
                "vars": {"code": "123456"},
            },
        )
        assert r.status_code == 202
        ids = r.json()["message_ids"]
        assert len(ids) == 2
        worker = worker_for(live_api.settings, engine)
        asyncio.run(run_worker_until(worker, lambda: len(recorder.messages) == 2))
        assert {m.rcpt for m in recorder.messages} == {"zoe@example.com", "bo@example.com"}
        assert all(b"Subject: Code 123456" in m.data for m in recorder.messages)
