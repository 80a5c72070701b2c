"""What receivers' filters look for, on messages that went through the pipeline into aiosmtpd:
List-Id, Precedence, Auto-Submitted and Feedback-ID, covered by a DKIM signature that an
implementation other than ours (dkimpy) verifies."""

import asyncio
import email
import email.policy
from pathlib import Path
from typing import Any

import dkim
from sqlalchemy import Engine

from steadymail.config import DkimSettings
from steadymail.store import sends
from tests.conftest import Recorder
from tests.helpers import make_campaign, run_worker_until, send_state, worker_for
from tests.unit.sending.test_dkim import rsa_key


def test_campaign_messages_carry_list_and_feedback_headers_under_dkim(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    tmp_path: Path,
) -> None:
    recorder, port = smtp_server
    key, record = rsa_key(tmp_path)
    settings = settings_for(
        db_url,
        port,
        dkim=[DkimSettings(domain="example.com", selector="s1", key_file=key)],
        message_id_domain="mail.example.net",
    )
    send_id = make_campaign(engine, settings, 3)
    list_id = sends.get_send(engine, send_id).list_id
    worker = worker_for(settings, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, send_id) == "completed"))
    assert len(recorder.messages) == 3
    for m in recorder.messages:
        msg = email.message_from_bytes(m.data, policy=email.policy.compat32)
        assert msg["List-Id"] == f"<list-{list_id}.mail.example.net>"
        assert msg["Precedence"] == "bulk"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["Feedback-ID"] == f"{send_id}:{list_id}:campaign:mail.example.net"
        signed = dkim.DKIM(m.data)
        assert signed.verify(dnsfunc=lambda name, timeout=5: record)
        signature = msg["DKIM-Signature"]
        tags = dict(
            part.strip().split("=", 1) for part in "".join(signature.split()).split(";") if part
        )
        covered = tags["h"].lower().split(":")
        assert {"list-id", "feedback-id", "list-unsubscribe", "from", "subject"} <= set(covered)
