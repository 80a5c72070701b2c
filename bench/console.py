"""Console benchmark: server time per page on a region with a realistic amount of data, and the
JavaScript each page loads. Prints one figure a line:

  healthz_p95_ms              the reference: GET /healthz on the same server, in this run
  page_<name>_p50_ms / _p95_ms  each console page (and live fragment) signed in, sequential
  page_<name>_ratio           its p95 / healthz p95
  pages_over_100ms            pages whose p95 passed 100 ms (the aim: 0)
  js_bytes_<name>             JavaScript a page loads (its <script src> files), and gzipped

Usage: python bench/console.py [--contacts 100000] [--sends 50] [--alerts 1000]
                               [--requests 40] [--database-url URL]
The region is filled through the same services the API uses: `--sends` campaigns of
contacts/sends contacts each (every message materialised, a third marked sent), alerts (half
resolved), captured mail, metric series and clicks; `steadymail api` serves it.
"""

import argparse
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import update

from steadymail.alerts.manager import AlertManager
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.services import apikeys, campaigns, csv_import, templates
from steadymail.store import capture, metric_series, tracking
from steadymail.store.capture import CapturedMail
from steadymail.store.db import make_engine, migrate
from steadymail.store.schema import messages
from steadymail.store.tracking import TrackingEvent

sys.path.insert(0, str(Path(__file__).parent))
from net import free_port

CLOCK = SystemClock()
AIM_MS = 100.0


def fill(settings: Settings, n_contacts: int, n_sends: int, n_alerts: int) -> None:
    migrate(settings.resolved_database_url())
    engine = make_engine(settings.resolved_database_url())
    per = n_contacts // n_sends
    templates.create_template(
        engine,
        CLOCK,
        "news",
        "Hi {{ first_name }}",
        "<p>Hi {{ first_name }}</p>"
        + "".join(f'<a href="https://example.com/{i}">{i}</a>' for i in range(10)),
        "Hi",
    )
    t0 = time.monotonic()
    for s in range(n_sends):
        rows = "email,first_name\n" + "".join(f"u{s}-{i}@example.com,User{i}\n" for i in range(per))
        csv_import.import_contacts(engine, CLOCK, rows.encode(), f"list-{s}")
        send_id = campaigns.create_campaign(
            engine, CLOCK, settings, name=f"send-{s}", list_name=f"list-{s}", template="news"
        )
        campaigns.start(engine, CLOCK, settings, send_id)
    with engine.begin() as conn:
        conn.execute(
            update(messages).where(messages.c.id % 3 == 0).values(state="sent", sent_at=CLOCK.now())
        )
    print(f"# filled {n_contacts} contacts, {n_sends} sends in {time.monotonic() - t0:.0f} s")
    manager = AlertManager(engine, CLOCK, [])
    for i in range(n_alerts):
        manager.fire(f"bench:{i}", "service_restarted", "warning", f"worker-{i} restarted", {})
        if i % 2:
            manager.resolve(f"bench:{i}", "bench")
    now = CLOCK.now()
    res = settings.metrics_interval
    for name in ("sent", "deferral_rate", "smtp_latency_p95"):
        points = [(now - 3600 + i * res, name, float(i % 17)) for i in range(int(3600 / res))]
        metric_series.put_points(engine, settings.region, res, points)
    tracking.insert_events(
        engine,
        [
            TrackingEvent(
                "click", 1, 1 + i, now - i, "GET", i % 10, f"https://example.com/{i % 10}"
            )
            for i in range(10_000)
        ],
    )
    box = capture.open_capture(settings.resolved_capture_db())
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n<p>hi</p>\r\n"
    capture.store(
        box,
        [
            CapturedMail(now, "a@example.com", "b@example.com", "hi", f"m{i}", len(raw), raw)
            for i in range(1000)
        ],
    )


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    for _ in range(3):
        client.get(path)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--sends", type=int, default=50)
    ap.add_argument("--alerts", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="steadymail-console-"))
    url = args.database_url or f"sqlite:///{work / 'steadymail.db'}"
    settings = Settings(data_dir=work, database_url=url)
    fill(settings, args.contacts, args.sends, args.alerts)
    engine = make_engine(url)
    key = apikeys.create_key(engine, CLOCK, "bench", {"read"})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        STEADYMAIL_DATA_DIR=str(work),
        STEADYMAIL_DATABASE_URL=url,
        STEADYMAIL_API_PORT=str(port),
        STEADYMAIL_PUBLIC_PORT=str(free_port()),
        STEADYMAIL_CONFIG=str(work / "none.toml"),
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "steadymail", "api", "--listeners", "admin"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        c = httpx.Client(base_url=base, timeout=30)
        r = c.post("/ui/login", data={"api_key": key}, headers={"Origin": base})
        assert r.status_code == 303, r.text
        ref = p95(timed(c, "/healthz", args.requests))
        print(f"healthz_p95_ms {ref:.2f}")
        pages = {
            "overview": "/ui/",
            "overview_live": "/ui/live/overview",
            "sends": "/ui/sends",
            "send": "/ui/sends/1",
            "send_live": "/ui/live/sends/1",
            "send_engagement_json": "/ui/sends/1/engagement.json",
            "lists": "/ui/lists",
            "list": "/ui/lists/list-0",
            "suppressions": "/ui/suppressions",
            "templates": "/ui/templates",
            "template_edit": "/ui/templates/1",
            "captured": "/ui/captured",
            "captured_one": "/ui/captured/1",
            "alerts": "/ui/alerts",
            "alerts_live": "/ui/live/alerts",
            "alert": "/ui/alerts/1",
            "metrics": "/ui/metrics",
            "metric": "/ui/metrics/series?name=sent",
            "metric_json": "/ui/metrics/series.json?name=sent",
        }
        slow = 0
        for name, path in pages.items():
            times = timed(c, path, args.requests)
            p = p95(times)
            slow += p > AIM_MS
            print(f"page_{name}_p50_ms {statistics.median(times):.2f}")
            print(f"page_{name}_p95_ms {p:.2f}")
            print(f"page_{name}_ratio {p / ref:.1f}")
        print(f"pages_over_100ms {slow}")
        for name in ("overview", "send", "metric", "template_edit"):
            html = c.get(pages[name]).text
            srcs = re.findall(r'<script src="([^"]+)"', html)
            bodies = [c.get(s).content for s in srcs]
            print(f"js_bytes_{name} {sum(len(b) for b in bodies)}")
            print(f"js_gzip_bytes_{name} {sum(len(gzip.compress(b)) for b in bodies)}")
    finally:
        api.terminate()
        api.wait(30)


if __name__ == "__main__":
    main()
