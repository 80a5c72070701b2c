"""Wiring: build the objects a process needs from settings, once, at its edge."""

import random
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import DkimSettings, Settings
from steadymail.domain.verp import verp_address
from steadymail.metrics import Metrics
from steadymail.presence import ServicePresence
from steadymail.sending.compose import Composer
from steadymail.sending.dkim_signer import DkimSigner
from steadymail.sending.faults import Faults
from steadymail.sending.flag_view import FlagView
from steadymail.sending.transport import SmtpPool
from steadymail.sending.worker import Worker
from steadymail.services import domains
from steadymail.store import ratelimit
from steadymail.tracking.keys import load_tracking_secrets
from steadymail.tracking.tracker import Tracker

__all__ = ["ServicePresence", "build_presence", "build_worker"]


def build_worker(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    instance_id: str | None = None,
    seed: int | None = None,
) -> Worker:
    metrics = Metrics(settings.region, settings.metrics_interval)
    flags = FlagView(engine)
    faults = Faults(settings, flags, clock)
    pool = SmtpPool(
        settings.relays,
        size=settings.worker_concurrency,
        timeout=settings.smtp_timeout,
        retries=settings.connection_retries,
        cooldown=settings.relay_cooldown,
        clock=clock,
        take=partial(ratelimit.take, engine),
        on_transaction=lambda seconds, code: metrics.smtp_transaction(seconds, code, clock.now()),
    )
    secrets = load_tracking_secrets(settings)
    tracker = Tracker(secrets.signer, settings.public_url, settings.open_tracking)
    return_path = None
    if settings.verp:
        key = secrets.verp_keys[0]
        return_path = partial(_return_path, key, settings.bounce_domain)

    signer = DkimSigner(settings.dkim, _domain_keys(engine))
    composer = Composer(
        signer,
        settings.message_id_domain,
        tracker,
        # The flag, where the region sets one, over the setting; read per message.
        lambda: str(flags.get("tracking.version") or settings.tracking_version),
        metrics,
        # The drill's fault, once armed: one message in N crashes the link rewriter.
        faults.tracking_crash_one_in,
        return_path=return_path,
    )
    return Worker(
        settings,
        engine,
        clock,
        pool,
        composer,
        instance_id=instance_id,
        rng=random.Random(seed),
        metrics=metrics,
        flags=flags,
        faults=faults,
        reload_dkim=lambda: signer.replace(settings.dkim, _domain_keys(engine)),
    )


def _domain_keys(engine: Engine) -> list[DkimSettings]:
    """The active keys of the sending domains (`steadymail domain`); the signer leaves out, and
    logs, one it cannot load."""
    return [
        DkimSettings.model_validate(
            {
                "domain": k.domain,
                "selector": k.selector,
                "key_file": Path(k.key_file),
                "algorithm": k.algorithm,
            }
        )
        for k in domains.signing_keys(engine)
    ]


def _return_path(key: bytes, bounce_domain: str, message_id: int, from_domain: str) -> str:
    return verp_address(message_id, key, bounce_domain or from_domain)


def build_presence(
    settings: Settings, engine: Engine, clock: Clock, service: str
) -> ServicePresence:
    """The registration, heartbeat and peer watch of a process without a lease loop of its own
    (api, control); the caller starts and stops it."""
    return ServicePresence(engine, clock, settings, service)
