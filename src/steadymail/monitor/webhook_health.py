"""Webhook endpoints that keep failing: a warning after `webhook_alert_after`, and a critical
alert once the dispatcher has disabled one; both resolve when it delivers (or is enabled)."""

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.monitor.signals import Signal
from steadymail.store import webhooks


class WebhookWatcher:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._settings = engine, settings
        # Fingerprints this monitor fired (None: not known yet; the first tick resolves all).
        self._firing: set[str] | None = None

    def tick(self, now: float) -> list[Signal]:
        out: list[Signal] = []
        firing: set[str] = set()
        for hook in webhooks.listing(self._engine):
            labels = {"webhook": hook.id, "url": hook.url}
            if not hook.enabled and hook.disabled_reason:
                fp = f"webhook:{hook.id}:disabled"
                firing.add(fp)
                out.append(
                    Signal(
                        fp,
                        "webhook_disabled",
                        "critical",
                        f"webhook {hook.id} ({hook.url}) disabled: {hook.disabled_reason}",
                        labels,
                        detail=hook.last_error,
                    )
                )
            elif (
                hook.enabled
                and hook.failing_since is not None
                and now - hook.failing_since >= self._settings.webhook_alert_after
            ):
                fp = f"webhook:{hook.id}:failing"
                firing.add(fp)
                minutes = (now - hook.failing_since) / 60
                out.append(
                    Signal(
                        fp,
                        "webhook_failing",
                        "warning",
                        f"webhook {hook.id} ({hook.url}) failing for {minutes:.0f} min; events "
                        "wait in its outbox",
                        labels,
                        detail=hook.last_error,
                    )
                )
        known = self._firing
        if known is None:
            known = {
                f"webhook:{h.id}:{k}"
                for h in webhooks.listing(self._engine)
                for k in ("disabled", "failing")
            }
        for fp in sorted(known - firing):
            out.append(Signal(fp, "webhook", resolve=True, detail="delivering again"))
        self._firing = firing
        return out
