"""The built-in capture server: mail sent through the pipeline shows up in the API."""

import asyncio
from pathlib import Path

import httpx
import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from steadymail.cli.content import captured_cmd
from steadymail.config import RelaySettings
from steadymail.sending.capture import start_sink
from steadymail.services import transactional
from steadymail.store import capture
from tests.conftest import CLOCK, LiveApi
from tests.helpers import cli_against, free_port, run_worker_until, worker_for


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


def test_the_command_shows_the_bytes_as_received(
    live_api: LiveApi,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    db_url: str,
) -> None:
    """Folded header lines keep their folding and leading whitespace (a terminal renderer
    re-wraps them)."""
    store = capture.open_capture(live_api.settings.resolved_capture_db())
    port = free_port()
    controller, handler = start_sink(store, "127.0.0.1", port)
    long_subject = "Grüße aus Köln und Zürich, " * 5  # encoded words, folded
    try:
        transactional.enqueue(
            engine,
            CLOCK,
            live_api.settings,
            to=["Zoë <zoe@example.com>"],
            subject=long_subject,
            text="hi",
        )
        settings = live_api.settings.model_copy(
            update={"relays": [RelaySettings(host="127.0.0.1", port=port)]}
        )
        asyncio.run(run_worker_until(worker_for(settings, engine), lambda: handler.received == 1))
        handler.flush()
    finally:
        controller.stop()
    [row] = capture.recent(store, 10, None)
    raw = capture.raw(store, row.id)
    assert b"\r\n " in raw.split(b"\r\n\r\n", 1)[0]  # the subject is folded
    cli_against(monkeypatch, db_url, live_api.settings.data_dir, tmp_path)
    cli = typer.Typer()
    cli.command("captured")(captured_cmd)
    cli.command("noop")(lambda: None)
    r = CliRunner().invoke(cli, ["captured", "--show", str(row.id)])
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == raw
