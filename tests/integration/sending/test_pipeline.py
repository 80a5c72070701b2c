"""The whole pipeline against a real aiosmtpd server, on SQLite and PostgreSQL."""

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from steadymail.store import sends
from tests.conftest import Recorder
from tests.helpers import make_campaign, run_worker_until, send_state, worker_for


def test_campaign_is_delivered_once_to_every_recipient(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port)
    send_id = make_campaign(engine, settings, 95)
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    rcpts = Counter(m.rcpt for m in recorder.messages)
    assert len(rcpts) == 95
    assert max(rcpts.values()) == 1
    progress = sends.progress(engine, send_id)
    assert progress.counts == {"sent": 95}
    assert progress.open_batches == 0
    body = next(m.data for m in recorder.messages if m.rcpt == "user7@example.com")
    assert b"Hello User7" in body
    assert b"multipart/alternative" in body
