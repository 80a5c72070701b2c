"""`steadymail up`: one command runs a region, and a worker that dies is restarted."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from steadymail.store.db import make_engine
from steadymail.store.schema import instances
from tests.e2e.conftest import up_env
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_up_runs_a_region_and_restarts_a_killed_worker(tmp_path: Path) -> None:
    env, ports = up_env(metrics_interval=1)
    api_port, public_port = ports.api, ports.public
    cmd = [sys.executable, "-m", "steadymail"]
    up = subprocess.Popen(
        [*cmd, "up"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        engine = make_engine(f"sqlite:///{tmp_path / '.steadymail' / 'steadymail.db'}")

        def live_workers() -> list[int]:
            try:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(instances.c.pid).where(
                            instances.c.service == "worker", instances.c.stopped_at.is_(None)
                        )
                    )
                    return [r.pid for r in rows]
            except Exception:
                return []

        wait_until(lambda: len(live_workers()) == 2, timeout=60)
        wait_until(lambda: _healthy(api_port), timeout=30)
        key_file = tmp_path / ".steadymail" / "dev-api-key"
        key = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
        # The public listener (tracking, unsubscribe) is apart from the admin API.
        wait_until(lambda: _healthy(public_port), timeout=30)
        public = f"http://127.0.0.1:{public_port}"
        assert (
            httpx.get(public + "/v1/sends", headers={"Authorization": f"Bearer {key}"}).status_code
            == 404
        )
        victim = live_workers()[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len([p for p in live_workers() if p != victim]) >= 2, timeout=30)

        r = httpx.post(
            f"http://127.0.0.1:{api_port}/v1/messages",
            headers={"Authorization": f"Bearer {key}"},
            json={"to": "zoe@example.com", "subject": "hello", "text": "hi"},
        )
        assert r.status_code == 202

        def captured() -> str:
            # check=True: a failing `steadymail captured` fails the test at once.
            return subprocess.run(
                [*cmd, "captured"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        wait_until(lambda: "zoe@example.com" in captured(), 30, "the message in `captured`")
        # Prometheus sees the worker processes' counters through the API (multiprocess mode).
        wait_until(lambda: _sent_counter(api_port) >= 1, timeout=10)
        # The monitor folded the worker's interval sums into the region's series.
        auth = {"Authorization": f"Bearer {key}"}
        wait_until(
            lambda: (
                "sent"
                in httpx.get(f"http://127.0.0.1:{api_port}/v1/metrics/series", headers=auth).json()
            ),
            timeout=15,
        )
        sent = httpx.get(f"http://127.0.0.1:{api_port}/v1/metrics/series/sent", headers=auth)
        assert sum(v for _, v in sent.json()["points"]) >= 1
        table = subprocess.run(
            [*cmd, "metrics"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout
        assert "throughput" in table and "sent" in table
    finally:
        up.send_signal(signal.SIGINT)
        output = up.communicate(timeout=60)[0].decode()
    assert "event=child_died name=worker-" in output and "SIGKILL" in output
    assert up.returncode == 0


def _sent_counter(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("steadymail_messages_total{") and 'outcome="sent"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
