"""The common Celery + Redis pattern as a peer for `bench/peers.py`: one task per message,
rendered with Jinja2, built with the standard library's `email`, sent with smtplib over a new
connection (as Django's `send_mail` and most tutorials do), a prefork worker process per core.

The task counts what it sent in Redis so that the driver knows when the queue is drained.
"""

import functools
import os
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import redis
from celery import Celery
from jinja2 import Environment, Template

BROKER = os.environ.get("PEER_CELERY_BROKER", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("PEER_CELERY_QUEUE", "steadymail-peer")
COUNTER = f"{QUEUE}:sent"
SMTP_PORT = int(os.environ.get("PEER_SMTP_PORT", "25"))
TEMPLATE_FILE = os.environ.get("PEER_TEMPLATE", "")

app = Celery("peer_celery", broker=BROKER)
app.conf.update(task_default_queue=QUEUE, worker_hijack_root_logger=False)

_env = Environment(autoescape=True)
_redis = redis.Redis.from_url(BROKER)


@functools.cache
def template(source: str) -> Template:
    """Compiled once per worker process, as a real app's template loader caches it."""
    return _env.from_string(source)


@functools.cache
def html_source() -> str:
    return Path(TEMPLATE_FILE).read_text()


@app.task(name="peer.send_one")
def send_one(contact: dict[str, str]) -> None:
    msg = EmailMessage()
    msg["Subject"] = template("News for {{ first_name }}").render(contact)
    msg["From"] = "News <news@example.com>"
    msg["To"] = contact["email"]
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(template("Hello {{ first_name }}").render(contact))
    msg.add_alternative(template(html_source()).render(contact), subtype="html")
    with smtplib.SMTP("127.0.0.1", SMTP_PORT) as smtp:
        smtp.send_message(msg)
    _redis.incr(COUNTER)
