"""The built-in capture server: mail sent through the pipeline shows up in the API."""

import asyncio

import httpx
from sqlalchemy import Engine

from steadymail.config import RelaySettings
from steadymail.sending.capture import start_sink
from steadymail.store import capture
from tests.conftest import LiveApi
from tests.helpers import free_port, run_worker_until, worker_for


def test_captured_messages_are_listed_and_downloadable(live_api: LiveApi, engine: Engine) -> None:
    store = capture.open_capture(live_api.settings.resolved_capture_db())
    port = free_port()
    controller, handler = start_sink(store, "127.0.0.1", port)
    try:
        headers = {"Authorization": f"Bearer {live_api.key}"}
        r = httpx.post(
            live_api.url + "/v1/messages",
            headers=headers,
            json={
                "to": "Zoë <zoe@example.com>",
                "subject": "Grüße {{ n }}",
                "text": "n={{ n }}",
                "html": "<p>n={{ n }}</p>",
                "vars": {"n": 7},
            },
        )
        assert r.status_code == 202
        settings = live_api.settings.model_copy(
            update={"relays": [RelaySettings(host="127.0.0.1", port=port)]}
        )
        worker = worker_for(settings, engine)
        asyncio.run(run_worker_until(worker, lambda: handler.received == 1))
        handler.flush()
        listed = httpx.get(live_api.url + "/v1/captured", headers=headers).json()
        assert len(listed) == 1
        assert listed[0]["rcpt_to"] == "zoe@example.com" and listed[0]["subject"] == "Grüße 7"
        raw = httpx.get(f"{live_api.url}/v1/captured/{listed[0]['id']}/raw", headers=headers)
        assert raw.headers["content-type"] == "message/rfc822"
        assert b"multipart/alternative" in raw.content
        assert httpx.get(live_api.url + "/v1/captured/999/raw", headers=headers).status_code == 404
    finally:
        controller.stop()
