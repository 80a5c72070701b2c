"""django-post_office as a peer for `bench/peers.py`: the same personalised messages queued in
its tables, then sent by its own `send_queued` (`send_queued_mail_until_done`) with its
multiprocessing option, on the same database kinds.

Run by peers.py as `python bench/peer_postoffice.py queue|send DB_URL SMTP_PORT N PROCESSES`:
`queue` migrates and queues N messages (render on delivery, so personalisation costs at send
time, as ours does); `send` sends everything queued and prints `sent <n>`.
"""

import logging
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import django
from django.conf import settings


def configure(db_url: str, port: int) -> None:
    url = urlsplit(db_url)
    if url.scheme == "sqlite":
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url.path[1:] if url.path.startswith("//") else url.path,
            # Two processes write statuses at the end of their batches.
            "OPTIONS": {"timeout": 60},
        }
    else:
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/"),
            "USER": url.username or "postgres",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": str(url.port or 5432),
        }
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "post_office"],
        DATABASES={"default": database},
        EMAIL_BACKEND="post_office.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        POST_OFFICE={
            "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
            "DEFAULT_PRIORITY": "medium",
        },
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    # Its INFO lines per batch would be the bench's output.
    logging.getLogger("post_office").setLevel(logging.WARNING)


def queue(n: int, html: str) -> None:
    from django.core.management import call_command
    from post_office import mail
    from post_office.models import EmailTemplate

    call_command("migrate", verbosity=0)
    template = EmailTemplate.objects.create(
        name="bench",
        subject="News for {{ first_name }}",
        content="Hello {{ first_name }}",
        html_content=html,
    )
    chunk = 1000
    for start in range(0, n, chunk):
        mail.send_many(
            [
                {
                    "sender": "News <news@example.com>",
                    "recipients": [f"reader{i}@example.com"],
                    "template": template,
                    "context": {
                        "first_name": f"Reader{i}",
                        "city": f"City{i % 97}",
                        "email": f"reader{i}@example.com",
                    },
                    "render_on_delivery": True,
                }
                for i in range(start, min(n, start + chunk))
            ]
        )


def send(processes: int) -> None:
    from post_office import mail
    from post_office.models import STATUS, Email

    lock = Path(tempfile.mkdtemp()) / "post_office"
    mail.send_queued_mail_until_done(lockfile=str(lock), processes=processes, log_level=0)
    print(f"sent {Email.objects.filter(status=STATUS.sent).count()}", flush=True)


def main() -> None:
    action, db_url, port, n, processes = sys.argv[1:6]
    configure(db_url, int(port))
    if action == "queue":
        sys.path.insert(0, str(Path(__file__).parent))
        from throughput import newsletter_html

        queue(int(n), newsletter_html(20_000))
    else:
        send(int(processes))


if __name__ == "__main__":
    main()
