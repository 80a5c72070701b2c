"""Hostile input through a running region (`steadymail up`): refused at the door with a clear
4xx, or failed as that one message; never a dead process, never a 5xx, and the API answers."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from steadymail.store import sends
from steadymail.store.db import make_engine
from steadymail.store.schema import instances
from tests.e2e.conftest import up_env
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

BOMB_TEMPLATES = [
    "{{ 9**(9**9) }}",  # folded at compile time by a plain Jinja
    "{{ 'a' * 10**9 }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ ('a' * 100000)|replace('a', 'b' * 100000) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
]


def _processes(engine: Engine) -> dict[str, int]:
    """Live instances by id (service:pid): a restart shows as a new id."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(instances.c.service, instances.c.pid).where(instances.c.stopped_at.is_(None))
            )
            return {f"{r.service}:{r.pid}": r.pid for r in rows}
    except Exception:
        return {}


def test_hostile_inputs_kill_no_process_and_get_no_5xx(tmp_path: Path) -> None:
    env, ports = up_env(max_import_bytes=100_000)
    api_port = ports.api
    up = subprocess.Popen(
        [sys.executable, "-m", "steadymail", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        engine = make_engine(f"sqlite:///{tmp_path / '.steadymail' / 'steadymail.db'}")
        wait_until(
            lambda: (
                sum(k.startswith("worker:") for k in _processes(engine)) == 2
                and any(k.startswith("api:") for k in _processes(engine))
            ),
            timeout=60,
        )
        before = _processes(engine)
        key = (tmp_path / ".steadymail" / "dev-api-key").read_text().strip()
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        statuses: list[tuple[str, int]] = []

        def call(what: str, method: str, url: str, **kw: Any) -> httpx.Response:
            r = api.request(method, url, **kw)
            statuses.append((what, r.status_code))
            assert r.status_code < 500, (what, r.status_code, r.text[:300])
            return r

        # Templates whose rendering would burn the CPU or the memory: 422 at creation.
        for i, bomb in enumerate(BOMB_TEMPLATES):
            r = call(
                f"template {bomb}",
                "POST",
                "/v1/templates",
                json={"name": f"bomb{i}", "subject": "s", "text": bomb},
            )
            assert r.status_code == 422, (bomb, r.text[:300])
            r = call(
                f"message {bomb}",
                "POST",
                "/v1/messages",
                json={"to": "a@example.com", "subject": "s", "text": bomb},
            )
            assert r.status_code == 422, (bomb, r.text[:300])

        # A template that fails only for some recipients: those messages fail, the rest go.
        rows = ["email,first_name"] + [f"n{i}@example.com,{i + 1}" for i in range(5)]
        rows += [f"s{i}@example.com,Ann" for i in range(5)]
        call("list", "POST", "/v1/lists", json={"name": "mixed"})
        r = call(
            "import",
            "POST",
            "/v1/lists/mixed/import",
            content="\n".join(rows) + "\n",
            headers={"Content-Type": "text/csv"},
        )
        assert r.json()["imported"] == 10
        r = call(
            "template",
            "POST",
            "/v1/templates",
            json={"name": "plus", "subject": "hi", "text": "{{ 10 // first_name|int }}"},
        )
        assert r.status_code == 201, r.text
        r = call(
            "campaign",
            "POST",
            "/v1/campaigns",
            json={"name": "mixed", "list": "mixed", "template": "plus"},
        )
        assert r.status_code == 201, r.text  # its dry render of the first five contacts passes
        send_id = r.json()["id"]
        call("start", "POST", f"/v1/sends/{send_id}/start")

        # Link rewriting on a body built to be quadratic; it is sent (or failed), no more.
        r = call(
            "parens",
            "POST",
            "/v1/messages",
            json={"to": "p@example.com", "subject": "s", "text": "http://a" + ")" * 200_000},
        )
        assert r.status_code == 202, r.text

        # Headers, sizes and numbers refused at the door.
        for headers in (
            {"Bcc": "spy@example.com"},
            {"X-Evil": "a\r\nBcc: spy@example.com"},
            {"Bad Name": "x"},
            {"Return-Path": "<x@example.com>"},
        ):
            r = call(
                f"headers {headers}",
                "POST",
                "/v1/messages",
                json={"to": "h@example.com", "subject": "s", "text": "t", "headers": headers},
            )
            assert r.status_code == 422, (headers, r.text[:300])
        r = call(
            "many recipients",
            "POST",
            "/v1/messages",
            json={"to": [f"r{i}@example.com" for i in range(5000)], "subject": "s", "text": "t"},
        )
        assert r.status_code == 422
        r = call(
            "huge body",
            "POST",
            "/v1/messages",
            json={"to": "b@example.com", "subject": "s", "text": "x" * 3_000_000},
        )
        assert r.status_code == 413
        big_csv = "email\n" + "".join(f"u{i}@example.com\n" for i in range(20_000))
        r = call(
            "huge import",
            "POST",
            "/v1/lists/mixed/import",
            content=big_csv,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 413
        r = call(
            "nan silence",
            "POST",
            "/v1/silences",
            content='{"name": "x", "minutes": NaN}',
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422
        r = call("page too big", "GET", "/v1/sends", params={"limit": 10**6})
        assert r.status_code == 422

        wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=60)
        counts = sends.progress(engine, send_id).counts
        assert counts == {"sent": 5, "failed": 5}, counts
        assert api.get("/healthz").status_code == 200
        after = _processes(engine)
        assert before.keys() <= after.keys(), f"restarted: {before.keys() - after.keys()}"
        assert up.poll() is None
        codes = sorted({s for _, s in statuses})
        print(f"hostile inputs: {len(statuses)} requests, statuses {codes}")
    finally:
        up.terminate()
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
