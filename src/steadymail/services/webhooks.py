"""What customers ask of event webhooks: add (the secret shown once), list, enable, disable,
remove, replay from a time."""

from dataclasses import dataclass

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.webhooks import check_events, new_secret, secret_bytes
from steadymail.errors import ValidationError
from steadymail.store import webhooks
from steadymail.store.webhooks import Webhook
from steadymail.webhooks.dispatcher import check_url

__all__ = ["Webhook"]

MAX_REPLAY = 1_000_000


@dataclass(frozen=True)
class Added:
    webhook: Webhook
    # Shown once: the receiver verifies signatures with it.
    secret: str


def add(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    url: str,
    events: list[str],
    secret: str | None = None,
    description: str = "",
) -> Added:
    chosen_events = check_events(events)
    chosen = secret or new_secret()
    secret_bytes(chosen)
    check_url(url, settings.webhook_allow_private)
    webhook_id = webhooks.create(engine, url, chosen_events, chosen, description[:200], clock.now())
    return Added(webhooks.get(engine, webhook_id), chosen)


def listing(engine: Engine) -> list[Webhook]:
    return webhooks.listing(engine)


def get(engine: Engine, webhook_id: int) -> tuple[Webhook, dict[str, int]]:
    """The webhook and its deliveries by state."""
    return webhooks.get(engine, webhook_id), webhooks.counts(engine, webhook_id)


def set_enabled(engine: Engine, webhook_id: int, enabled: bool, reason: str = "") -> Webhook:
    if not enabled and not reason.strip():
        raise ValidationError("say why the webhook is disabled")
    webhooks.set_enabled(engine, webhook_id, enabled, reason.strip()[:500])
    return webhooks.get(engine, webhook_id)


def remove(engine: Engine, webhook_id: int) -> None:
    webhooks.remove(engine, webhook_id)


def replay(engine: Engine, clock: Clock, webhook_id: int, since: float) -> int:
    """Queue again every event since `since` the webhook takes; returns how many."""
    now = clock.now()
    if since > now:
        raise ValidationError("'since' is in the future")
    return webhooks.replay(engine, webhook_id, since, now, MAX_REPLAY)
