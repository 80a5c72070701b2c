"""Tracking benchmark. Prints one figure a line:

  rewrite_msgs_per_s / rewrite_links_per_s  Tracker.rewrite on a 20 KB newsletter with 30 links
  parse_only_msgs_per_s                     the same document parsed and serialised, no rewriting
  rewrite_ratio                             rewrite / parse-only, measured in this run
  click_redirects_per_s                     wrk against /t/c/{token} on uvicorn (verify + record)
  bare_redirects_per_s                      wrk against a fixed 302 FastAPI route, same uvicorn
  click_ratio                               click / bare
  bare_asgi_redirects_per_s                 a fixed 302 from a plain ASGI callable, same uvicorn
                                            (the click route is a plain ASGI hot path)
  click_ratio_to_asgi                       click / bare ASGI
  click_events_recorded                     events written / requests wrk made (must be 1.000)

Usage: python bench/tracking.py [--seconds 10] [--connections 64]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selectolax.lexbor import LexborHTMLParser
from sqlalchemy import func, select

from steadymail.config import Settings
from steadymail.store.db import make_engine, migrate
from steadymail.store.schema import tracking_events
from steadymail.tracking.keys import load_tracking_secrets
from steadymail.tracking.tokens import Kind, TokenData
from steadymail.tracking.tracker import Tracker

sys.path.insert(0, str(Path(__file__).parent))
from net import free_port
from throughput import newsletter_html


def rate(fn: object, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()  # type: ignore[operator]
        n += 1
    return n / (time.perf_counter() - start)


def bench_rewrite(settings: Settings, seconds: float) -> None:
    html = newsletter_html(20_000, links=30)
    tracker = Tracker(load_tracking_secrets(settings).signer, settings.public_url)
    counter = iter(range(10**9))
    msgs = rate(lambda: tracker.rewrite("v1", 1, next(counter), html, ""), seconds)
    parse = rate(lambda: LexborHTMLParser(html).html, seconds)
    links = len({a.attributes.get("href") for a in LexborHTMLParser(html).css("a")})
    print(f"rewrite_msgs_per_s {msgs:.0f}")
    print(f"rewrite_links_per_s {msgs * links:.0f}")
    print(f"parse_only_msgs_per_s {parse:.0f}")
    print(f"rewrite_ratio {msgs / parse:.3f}", flush=True)


def serve(target: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        env=env,
        cwd=Path(__file__).parent,
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def wrk(url: str, seconds: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise RuntimeError(out)
    return float(rps.group(1)), int(total.group(1))


def bench_clicks(workdir: Path, seconds: float, connections: int) -> None:
    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {
            "STEADYMAIL_DATABASE_URL": url,
            "STEADYMAIL_DATA_DIR": str(workdir),
            "STEADYMAIL_CONFIG": str(workdir / "none.toml"),
        }
    )
    settings = Settings(database_url=url, data_dir=workdir)
    token = load_tracking_secrets(settings).signer.sign(
        TokenData(Kind.CLICK, 1, 1, 0, "https://example.com/landing?utm_source=news")
    )
    port = free_port()
    proc = serve(["--factory", "steadymail.api.app:public_app_from_env"], port, env)
    try:
        click, requests = wrk(f"http://127.0.0.1:{port}/t/c/{token}", seconds, connections)
    finally:
        proc.terminate()
        proc.wait(30)
    engine = make_engine(url)
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(tracking_events)).scalar_one()
    bare = {}
    for name in ("app", "asgi"):
        port = free_port()
        proc = serve([f"bare_app:{name}"], port, env)
        try:
            bare[name], _ = wrk(f"http://127.0.0.1:{port}/t/c/{token}", seconds, connections)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"click_redirects_per_s {click:.0f}")
    print(f"bare_redirects_per_s {bare['app']:.0f}")
    print(f"click_ratio {click / bare['app']:.3f}")
    print(f"bare_asgi_redirects_per_s {bare['asgi']:.0f}")
    print(f"click_ratio_to_asgi {click / bare['asgi']:.3f}")
    print(f"click_events_recorded {recorded / requests:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="steadymail-track-"))
    settings = Settings(data_dir=workdir, public_url="https://t.example.net")
    bench_rewrite(settings, min(args.seconds, 5))
    bench_clicks(workdir, args.seconds, args.connections)


if __name__ == "__main__":
    main()
