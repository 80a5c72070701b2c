"""steadymail beside the Python peers, on the same machine, the same smtp-sink and the same
personalised ~20 KB HTML messages (30 links, a few variables; `throughput.newsletter_html`).

- django-post_office: the messages queued in its tables (rendered on delivery), sent by its own
  `send_queued_mail_until_done` with its multiprocessing option (a process per core), on the
  same database kinds as ours (a fresh SQLite file, a fresh PostgreSQL database).
- Celery + Redis: one task per message (Jinja2, the standard library's `email`, smtplib over a
  new connection), a prefork worker process per core.
- steadymail: the send as `bench/throughput.py` runs it (link tracking on: the peers do not
  rewrite links or sign tokens), a worker process per core.

Only the sending is timed: queueing (our send's materialisation, post_office's rows, Celery's
tasks in Redis) happens before the clock starts; each side's processes start inside it.

Prints one figure a line:
  steadymail_<db>_msgs_per_s, steadymail_<db>_cpu_ms_per_msg
  post_office_<db>_msgs_per_s, post_office_<db>_cpu_ms_per_msg, <db>_ratio_to_post_office
  celery_redis_msgs_per_s, celery_redis_cpu_ms_per_msg, <db>_ratio_to_celery_redis

Usage: python bench/peers.py [--messages 20000] [--db sqlite,postgresql] [--processes 2]
Needs: pip install django django-post_office celery redis (`pip install -e '.[bench]'`).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).parent))
from net import fresh_database, sink_and_workdir
from throughput import newsletter_html, run_on

HERE = Path(__file__).parent
REDIS_URL = "redis://127.0.0.1:6379/14"


def reap(proc: subprocess.Popen[bytes]) -> float:
    """Waits for `proc` and returns the CPU seconds it and the children it reaped used."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def post_office_rate(
    kind: str, port: int, n: int, processes: int, workdir: Path
) -> tuple[float, float]:
    """(msg/s, CPU ms a message) of django-post_office's send_queued on a fresh database."""
    script = str(HERE / "peer_postoffice.py")
    with fresh_database(kind, workdir) as url:
        base = [sys.executable, script]
        tail = [url, str(port), str(n), str(processes)]
        subprocess.run([*base, "queue", *tail], check=True)
        started = time.perf_counter()
        proc = subprocess.Popen([*base, "send", *tail], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        cpu = reap(proc)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0 or f"sent {n}" not in out:
        raise RuntimeError(f"post_office did not send everything: {out!r} rc={proc.returncode}")
    return n / elapsed, cpu * 1000 / n


def celery_rate(port: int, n: int, processes: int, workdir: Path) -> tuple[float, float]:
    """(msg/s, CPU ms a message) of a Celery prefork worker draining n one-message tasks."""
    queue = f"steadymail-peer-{os.getpid()}"
    template = workdir / "newsletter.html"
    template.write_text(newsletter_html(20_000))
    env = {
        **os.environ,
        "PEER_CELERY_BROKER": REDIS_URL,
        "PEER_CELERY_QUEUE": queue,
        "PEER_SMTP_PORT": str(port),
        "PEER_TEMPLATE": str(template),
        "PYTHONPATH": str(HERE),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("PEER_")})
    import peer_celery

    r = redis.Redis.from_url(REDIS_URL)
    r.delete(queue, peer_celery.COUNTER)
    with peer_celery.app.producer_pool.acquire(block=True) as producer:
        for i in range(n):
            contact = {"email": f"reader{i}@example.com", "first_name": f"Reader{i}"}
            contact["city"] = f"City{i % 97}"
            peer_celery.send_one.apply_async((contact,), producer=producer)
    started = time.perf_counter()
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "peer_celery", "worker",
            f"--concurrency={processes}", "--pool=prefork", f"--queues={queue}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while int(r.get(peer_celery.COUNTER) or 0) < n:
            if worker.poll() is not None:
                raise RuntimeError("the Celery worker exited before the queue was drained")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        cpu = reap(worker)
        r.delete(queue, peer_celery.COUNTER)
    return n / elapsed, cpu * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    with sink_and_workdir("steadymail-peers-") as (port, workdir):
        ours_args = argparse.Namespace(
            messages=args.messages, size=20_000, workers=args.processes, concurrency=8, dkim="none"
        )
        ours: dict[str, float] = {}
        for db in args.db.split(","):
            rate, _, cpu = run_on(db, port, ours_args, workdir)
            ours[db] = rate
            print(f"steadymail_{db}_msgs_per_s {rate:.0f}")
            print(f"steadymail_{db}_cpu_ms_per_msg {cpu:.2f}", flush=True)
            rate, cpu = post_office_rate(db, port, args.messages, args.processes, workdir)
            print(f"post_office_{db}_msgs_per_s {rate:.0f}")
            print(f"post_office_{db}_cpu_ms_per_msg {cpu:.2f}")
            print(f"{db}_ratio_to_post_office {ours[db] / rate:.2f}", flush=True)
        rate, cpu = celery_rate(port, args.messages, args.processes, workdir)
        print(f"celery_redis_msgs_per_s {rate:.0f}")
        print(f"celery_redis_cpu_ms_per_msg {cpu:.2f}")
        for db, mine in ours.items():
            print(f"{db}_ratio_to_celery_redis {mine / rate:.2f}", flush=True)


if __name__ == "__main__":
    main()
