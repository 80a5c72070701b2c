"""Throughput of the whole pipeline against Postfix's smtp-sink, beside the raw SMTP limit.

Prints one figure a line:
  raw_smtp_source_msgs_per_s   smtp-source pushing N pre-made messages of the same size
  <db>_steadymail_msgs_per_s   N personalised ~20 KB HTML messages: render, MIME, (DKIM,) SMTP
  <db>_ratio                   steadymail / raw, measured in this same run
  <db>_cpu_ms_per_msg          the worker processes' CPU time (user + system) per message
  postgresql_workers_<n>_msgs_per_s   with --sweep 1,2,4: the same send with n worker
                                      processes on PostgreSQL (and its ratio), to show the
                                      growth with workers

Usage: python bench/throughput.py [--messages 50000] [--workers 2] [--concurrency 8]
       [--dkim none|rsa|ed25519] [--db sqlite,postgresql] [--sweep 1,2,4]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.services import campaigns, csv_import, templates
from steadymail.store import sends
from steadymail.store.db import make_engine, migrate

sys.path.insert(0, str(Path(__file__).parent))
from net import fresh_database, sink_and_workdir

CLOCK = SystemClock()


def raw_rate(port: int, n: int, size: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(n),
            "-l",
            str(size),
            "-f",
            "bench@example.com",
            "-t",
            "rcpt@example.com",
            f"127.0.0.1:{port}",
        ],
        check=True,
    )
    return n / (time.perf_counter() - started)


def newsletter_html(size: int, links: int = 30) -> str:
    """A realistic newsletter: static HTML of `size` bytes, `links` links, a few variables."""
    head = "<html><body><h1>Hello {{ first_name }}, the week in {{ city }}</h1>\n"
    para = (
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
        'exercitation. <a href="https://example.com/story/{n}?utm_source=news">Story {n}'
        "</a></p>\n"
    )
    body = []
    n = 0
    while len(head) + sum(map(len, body)) < size:
        body.append(para.format(n=n % links))
        n += 1
    tail = "<p>Sent to {{ email }} because you live in {{ city }}.</p></body></html>"
    return head + "".join(body) + tail


def dkim_settings(kind: str, workdir: Path) -> list[dict[str, str]]:
    if kind == "none":
        return []
    if kind == "rsa":
        key = workdir / "dkim.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        return [
            {
                "domain": "example.com",
                "selector": "b",
                "key_file": str(key),
                "algorithm": "rsa-sha256",
            }
        ]
    import base64

    import nacl.signing

    key = workdir / "dkim.ed25519"
    key.write_bytes(base64.b64encode(bytes(nacl.signing.SigningKey.generate())))
    return [
        {
            "domain": "example.com",
            "selector": "b",
            "key_file": str(key),
            "algorithm": "ed25519-sha256",
        }
    ]


def pipeline_rate(
    db_url: str, port: int, args: argparse.Namespace, workdir: Path
) -> tuple[float, float, float]:
    """Returns (messages/s from workers' start to the send's completion, materialise seconds,
    the workers' CPU milliseconds per message)."""
    migrate(db_url)
    engine = make_engine(db_url)
    settings = Settings(database_url=db_url, data_dir=workdir / "data", batch_size=100)
    rows = "email,first_name,city\n" + "".join(
        f"reader{i}@example.com,Reader{i},City{i % 97}\n" for i in range(args.messages)
    )
    csv_import.import_contacts(engine, CLOCK, rows.encode(), "bench")
    templates.create_template(
        engine,
        CLOCK,
        "bench",
        "News for {{ first_name }}",
        newsletter_html(args.size),
        "Hello {{ first_name }}",
    )
    send_id = campaigns.create_campaign(
        engine,
        CLOCK,
        settings,
        name="bench",
        list_name="bench",
        template="bench",
        from_addr="News <news@example.com>",
    )
    t0 = time.perf_counter()
    campaigns.start(engine, CLOCK, settings, send_id)
    materialise = time.perf_counter() - t0
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {
            "STEADYMAIL_DATABASE_URL": db_url,
            "STEADYMAIL_DATA_DIR": str(workdir / "data"),
            "STEADYMAIL_RELAYS": json.dumps([{"host": "127.0.0.1", "port": port}]),
            "STEADYMAIL_WORKER_CONCURRENCY": str(args.concurrency),
            "STEADYMAIL_DKIM": json.dumps(dkim_settings(args.dkim, workdir)),
            "STEADYMAIL_CONFIG": str(workdir / "none.toml"),
        }
    )
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "steadymail", "worker"], env=env, stderr=subprocess.DEVNULL
        )
        for _ in range(args.workers)
    ]
    try:
        while sends.get_send(engine, send_id).state != "completed":
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        counts = sends.progress(engine, send_id).counts
        if counts != {"sent": args.messages}:
            raise RuntimeError(f"unexpected outcome: {counts}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        cpu = 0.0
        for p in procs:
            # wait4 reaps the worker and says how much CPU it used, start to stop.
            _, _, usage = os.wait4(p.pid, 0)
            p.returncode = 0
            cpu += usage.ru_utime + usage.ru_stime
        engine.dispose()
    return args.messages / elapsed, materialise, cpu * 1000 / args.messages


def run_on(
    db: str, port: int, args: argparse.Namespace, workdir: Path
) -> tuple[float, float, float]:
    """`pipeline_rate` on a fresh database: a new SQLite file or a new PostgreSQL database."""
    with fresh_database(db, workdir) as url:
        return pipeline_rate(url, port, args, workdir)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--dkim", choices=["none", "rsa", "ed25519"], default="none")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--sweep", default="", help="worker counts to run on PostgreSQL, e.g. 1,2,4")
    args = ap.parse_args()
    with sink_and_workdir("steadymail-bench-") as (port, workdir):
        raw = raw_rate(port, args.messages, args.size, args.concurrency * args.workers)
        print(f"raw_smtp_source_msgs_per_s {raw:.0f}", flush=True)
        for db in args.db.split(","):
            rate, materialise, cpu = run_on(db, port, args, workdir)
            print(f"{db}_materialise_seconds {materialise:.2f}")
            print(f"{db}_steadymail_msgs_per_s {rate:.0f}")
            print(f"{db}_ratio {rate / raw:.3f}")
            print(f"{db}_cpu_ms_per_msg {cpu:.2f}", flush=True)
        for n in [int(w) for w in args.sweep.split(",") if w]:
            rate, _, cpu = run_on(
                "postgresql", port, argparse.Namespace(**{**vars(args), "workers": n}), workdir
            )
            print(f"postgresql_workers_{n}_msgs_per_s {rate:.0f}")
            print(f"postgresql_workers_{n}_ratio {rate / raw:.3f}")
            print(f"postgresql_workers_{n}_cpu_ms_per_msg {cpu:.2f}", flush=True)


if __name__ == "__main__":
    main()
