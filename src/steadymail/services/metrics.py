"""What the API and CLI ask of the region's metric series: names, points, anomaly marks."""

from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import ValidationError
from steadymail.store import alerts, flag_values, metric_series
from steadymail.store.metric_series import ROLLUP


def _resolution(settings: Settings, resolution: str) -> float:
    if resolution == "raw":
        return settings.metrics_interval
    if resolution == "minute":
        return ROLLUP
    raise ValidationError("resolution is 'raw' (the metrics interval) or 'minute'")


def series_names(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    minutes: float = 60,
    resolution: str = "raw",
    limit: int | None = None,
    offset: int = 0,
) -> list[str]:
    """Names of the series with points in the last ``minutes``, sorted."""
    if not 0 < minutes <= 60 * 24 * 31:
        raise ValidationError("minutes must be between 0 and 44640")
    res = _resolution(settings, resolution)
    names = metric_series.names(engine, settings.region, res, clock.now() - minutes * 60)
    # A region's series are a few dozen names: paged after the query.
    return names[offset:][:limit]


def series(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    name: str,
    minutes: float = 60,
    resolution: str = "raw",
) -> dict[str, Any]:
    """One series' points (oldest first) and the anomaly alerts raised on it in that span."""
    if not 0 < minutes <= 60 * 24 * 31:
        raise ValidationError("minutes must be between 0 and 44640")
    res = _resolution(settings, resolution)
    since = clock.now() - minutes * 60
    points = metric_series.read(engine, settings.region, name, res, since, limit=20_000)
    marks = [
        {
            "alert": a.id,
            "state": a.state,
            "window_start": a.labels.get("window_start"),
            "window_end": a.labels.get("window_end"),
            "score": a.labels.get("score"),
            "summary": a.summary,
        }
        for a in alerts.overlapping(engine, since, clock.now())
        if a.name == "metric_anomaly" and a.labels.get("series") == name
    ]
    changes = [
        {"name": c.name, "value": c.value, "previous": c.previous, "at": c.at, "by": c.by}
        for c in flag_values.history(engine, limit=1000)
        if c.at >= since
    ]
    return {
        "region": settings.region,
        "name": name,
        "resolution": res,
        "points": [[ts, v] for ts, v in points],
        "anomalies": marks,
        # The flags in force now and their changes in the span: ties each point to a version.
        "flags": flag_values.current(engine),
        "flag_changes": changes[::-1],
    }
