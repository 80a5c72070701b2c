"""SpamAssassin (Debian's package, local rules only, no network tests) on what the pipeline
really sends: the README's example campaign, a transactional receipt and a personalised
newsletter with tracking, each from a verified domain and signed. No rule that scores above 0
may hit, except those about the test's surroundings rather than the message (named below,
each with why)."""

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.services import campaigns, csv_import, domains, templates, transactional
from tests.conftest import Recorder
from tests.dns_server import dns_server
from tests.helpers import (
    CLOCK,
    make_campaign,
    need,
    run_worker_until,
    send_state,
    worker_for,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

# Rules about where the test runs, not about the message: no DNS for SpamAssassin (-L), so the
# signatures cannot be checked (DKIM_INVALID: "signature not verified", with the key unknown)
# and no relay has handled the mail (no Received header of a real MTA).
NOT_THE_MESSAGE = {
    "DKIM_INVALID": "with -L SpamAssassin cannot fetch the key; dkimpy verifies it in the suite",
    "HTML_MESSAGE": "informational (0.001) on every message with an HTML part",
}
# HTML_IMAGE_ONLY_04 … _32: an image in a message with under 3,200 bytes of text. The image is
# the open-tracking pixel; the text is the author's (these messages are short on purpose, as
# receipts are). Tracking off, or a longer text, and it does not hit.
NOT_THE_MESSAGE_PREFIXES = ("HTML_IMAGE_ONLY_",)


def need_spamassassin() -> str:
    found = shutil.which("spamassassin")
    need("SPAMASSASSIN", found is not None, "spamassassin (scripts/ensure-spamassassin)")
    assert found is not None
    return found


def hits(binary: str, message: bytes) -> dict[str, float]:
    """Rule -> score of every rule that hit, local tests only."""
    out = subprocess.run(
        [
            binary,
            "-L",
            "--cf",
            "add_header all Tests _TESTSSCORES(,)_",
            "--cf",
            "report_safe 0",
        ],
        input=message,
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode("utf-8", "replace")
    header = out.split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ")
    line = next(x for x in header.splitlines() if x.startswith("X-Spam-Tests:"))
    found: dict[str, float] = {}
    for item in line.split(":", 1)[1].split(","):
        name, _, score = item.strip().partition("=")
        if name and name != "none":
            found[name] = float(score)
    return found


# What SpamAssassin reads is the message, which does not depend on the database: one is enough.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_messages_score_clean(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
) -> None:
    binary = need_spamassassin()
    recorder, port = smtp_server
    with dns_server() as (zone, resolver):
        settings = settings_for(
            db_url,
            port,
            dns_resolver=resolver,
            allow_unverified_domains=False,
            public_url="https://t.example.com",
            message_id_domain="mail.example.com",
        )
        setup = domains.add(engine, CLOCK, settings, "example.com")
        for r in setup.records:
            zone.set(r.name, r.type, r.value)
        assert domains.check(engine, CLOCK, settings, "example.com").verified

    # The README's walk-through campaign.
    csv_import.import_contacts(
        engine, CLOCK, (EXAMPLES / "contacts.csv").read_bytes(), "newsletter"
    )
    templates.create_template(
        engine,
        CLOCK,
        "weekly",
        "Hi {{ first_name }}, the week in {{ city }}",
        (EXAMPLES / "newsletter.html").read_text(),
        (EXAMPLES / "newsletter.txt").read_text(),
    )
    example = campaigns.create_campaign(
        engine, CLOCK, settings, name="weekly-1", list_name="newsletter", template="weekly",
        from_addr="News <news@example.com>",
    )  # fmt: skip
    campaigns.start(engine, CLOCK, settings, example)
    # A personalised newsletter with several tracked links and an image.
    newsletter = make_campaign(
        engine,
        settings,
        3,
        list_name="readers",
        subject="{{ first_name }}, five stories for your weekend",
        html=NEWSLETTER_HTML,
        text=NEWSLETTER_TEXT,
        from_addr="The Example Weekly <weekly@example.com>",
    )
    transactional.enqueue(
        engine,
        CLOCK,
        settings,
        to=["ann@example.org"],
        subject="Your receipt for order {{ order }}",
        html=RECEIPT_HTML,
        text=RECEIPT_TEXT,
        variables={"order": "1042", "name": "Ann", "total": "EUR 23.50"},
        from_addr="Example Shop <orders@example.com>",
    )
    worker = worker_for(settings, engine)
    asyncio.run(
        run_worker_until(
            worker,
            lambda: (
                send_state(engine, example) == send_state(engine, newsletter) == "completed"
                and any(m.rcpt == "ann@example.org" for m in recorder.messages)
            ),
        )
    )
    chosen = {
        "campaign": next(m.data for m in recorder.messages if m.rcpt == "reader1@example.com"),
        "newsletter": next(m.data for m in recorder.messages if m.rcpt == "user1@example.com"),
        "receipt": next(m.data for m in recorder.messages if m.rcpt == "ann@example.org"),
    }
    assert b"/t/c/" in chosen["newsletter"] and b"DKIM-Signature" in chosen["receipt"]
    for kind, message in chosen.items():
        scored = hits(binary, message)
        print(f"{kind}: {sum(scored.values()):.3f} points {scored}")  # in the report with -s
        counted = {
            rule: score
            for rule, score in scored.items()
            if score > 0
            and rule not in NOT_THE_MESSAGE
            and not rule.startswith(NOT_THE_MESSAGE_PREFIXES)
        }
        assert counted == {}, (kind, scored)

    # Without the open pixel (open_tracking = false: links still tracked), the same newsletter
    # hits no image rule: the pixel was their only cause.
    plain = settings.model_copy(update={"open_tracking": False})
    again = make_campaign(
        engine,
        plain,
        1,
        list_name="readers-again",
        subject="{{ first_name }}, five stories for your weekend",
        html=NEWSLETTER_HTML,
        text=NEWSLETTER_TEXT,
        from_addr="The Example Weekly <weekly@example.com>",
    )
    recorder.messages.clear()
    worker = worker_for(plain, engine)
    asyncio.run(run_worker_until(worker, lambda: send_state(engine, again) == "completed"))
    [message] = [m.data for m in recorder.messages]
    assert b"/t/c/" in message and b"/t/o/" not in message
    scored = hits(binary, message)
    assert not [r for r in scored if r.startswith(NOT_THE_MESSAGE_PREFIXES)], scored
    assert {r: v for r, v in scored.items() if v > 0 and r not in NOT_THE_MESSAGE} == {}


NEWSLETTER_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>The Example Weekly</title></head>
<body>
<h1>Hello {{ first_name }},</h1>
<p>Here are five stories our editors picked for you this week.</p>
<h2><a href="https://example.com/stories/harbour-cleanup">The harbour clean-up, one year on</a></h2>
<p>Volunteers pulled four tonnes of rubbish out of the water. What changed since?</p>
<h2><a href="https://example.com/stories/night-trains">Night trains are back</a></h2>
<p>Three new routes start in spring; we rode the first one.</p>
<h2><a href="https://example.com/stories/community-gardens">Community gardens</a></h2>
<p>How a car park became a place to grow tomatoes.</p>
<h2><a href="https://example.com/stories/library-hours">Longer library hours</a></h2>
<p>The central library now opens until ten on weekdays.</p>
<h2><a href="https://example.com/stories/recipes">Five autumn recipes</a></h2>
<p>Soups, stews and a plum cake from our readers' kitchens.</p>
<p>Thanks for reading,<br>The Example Weekly team</p>
<p>You receive this because you subscribed at example.com.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""

NEWSLETTER_TEXT = """Hello {{ first_name }},

Here are five stories our editors picked for you this week.

The harbour clean-up, one year on: https://example.com/stories/harbour-cleanup
Night trains are back: https://example.com/stories/night-trains
Community gardens: https://example.com/stories/community-gardens
Longer library hours: https://example.com/stories/library-hours
Five autumn recipes: https://example.com/stories/recipes

Thanks for reading,
The Example Weekly team

You receive this because you subscribed at example.com.
Unsubscribe: {{ unsubscribe_url }}
"""

RECEIPT_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Your receipt</title></head>
<body>
<p>Hello {{ name }},</p>
<p>Thank you for your order {{ order }}. We have received your payment of {{ total }}.</p>
<p>You can see the order and its delivery at
<a href="https://example.com/account/orders/{{ order }}">your account</a>.</p>
<p>Example Shop, 1 High Street, Exampletown</p>
</body></html>"""

RECEIPT_TEXT = """Hello {{ name }},

Thank you for your order {{ order }}. We have received your payment of {{ total }}.

You can see the order and its delivery at https://example.com/account/orders/{{ order }}

Example Shop, 1 High Street, Exampletown
"""
