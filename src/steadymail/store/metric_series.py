"""The region's metric time series: interval sums in, folded points and rollups out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine, delete, func, insert, select

from steadymail.store.db import dialect_insert
from steadymail.store.schema import metric_deltas, metric_points

ROLLUP = 60.0


def add_deltas(
    engine: Engine, region: str, instance_id: str, rows: list[tuple[int, str, float]]
) -> None:
    """Store one process's drained interval sums (bucket, series, sum)."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(
            insert(metric_deltas),
            [
                {"region": region, "instance_id": instance_id, "bucket": b, "name": n, "value": v}
                for b, n, v in rows
            ],
        )


def fold_deltas(engine: Engine, region: str, upto: int) -> dict[int, dict[str, float]]:
    """Sum and delete the region's deltas of buckets <= ``upto``: {bucket: {series: sum}}."""
    out: defaultdict[int, dict[str, float]] = defaultdict(dict)
    where = (metric_deltas.c.bucket <= upto, metric_deltas.c.region == region)
    with engine.begin() as conn:
        rows = conn.execute(
            select(metric_deltas.c.bucket, metric_deltas.c.name, func.sum(metric_deltas.c.value))
            .where(*where)
            .group_by(metric_deltas.c.bucket, metric_deltas.c.name)
        ).all()
        conn.execute(delete(metric_deltas).where(*where))
    for bucket, name, total in rows:
        out[int(bucket)][str(name)] = float(total)
    return dict(out)


def _upsert(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    stmt = dialect_insert(conn, metric_points)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["region", "name", "resolution", "ts"],
            set_={
                "value": stmt.excluded.value,
                "count": stmt.excluded.count,
                "min": stmt.excluded.min,
                "max": stmt.excluded.max,
            },
        ),
        rows,
    )


def put_points(
    engine: Engine, region: str, resolution: float, points: list[tuple[float, str, float]]
) -> None:
    """Write raw points (ts, series, value), replacing any at the same place."""
    if not points:
        return
    rows = [
        {
            "region": region,
            "name": n,
            "resolution": resolution,
            "ts": ts,
            "value": v,
            "count": 1,
            "min": v,
            "max": v,
        }
        for ts, n, v in points
    ]
    with engine.begin() as conn:
        _upsert(conn, rows)


def roll_up(engine: Engine, region: str, resolution: float, start: float, end: float) -> int:
    """Summarise raw points with ts in [start, end) into 60 s points (mean, min, max)."""
    groups: defaultdict[tuple[str, float], list[float]] = defaultdict(list)
    with engine.begin() as conn:
        for name, ts, value in conn.execute(
            select(metric_points.c.name, metric_points.c.ts, metric_points.c.value).where(
                metric_points.c.region == region,
                metric_points.c.resolution == resolution,
                metric_points.c.ts >= start,
                metric_points.c.ts < end,
            )
        ):
            groups[(str(name), float(ts) // ROLLUP * ROLLUP)].append(float(value))
        if groups:
            _upsert(
                conn,
                [
                    {
                        "region": region,
                        "name": name,
                        "resolution": ROLLUP,
                        "ts": minute,
                        "value": sum(vs) / len(vs),
                        "count": len(vs),
                        "min": min(vs),
                        "max": max(vs),
                    }
                    for (name, minute), vs in groups.items()
                ],
            )
    return len(groups)


def prune(engine: Engine, resolution: float, before: float) -> int:
    """Drop points of one resolution older than ``before``; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(metric_points).where(
                metric_points.c.resolution == resolution, metric_points.c.ts < before
            )
        )
    return int(result.rowcount or 0)


def read(
    engine: Engine,
    region: str,
    name: str,
    resolution: float,
    since: float,
    limit: int = 5000,
) -> list[tuple[float, float]]:
    """(ts, value) of one series since ``since``, oldest first, at most ``limit``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(metric_points.c.ts, metric_points.c.value)
            .where(
                metric_points.c.region == region,
                metric_points.c.name == name,
                metric_points.c.resolution == resolution,
                metric_points.c.ts >= since,
            )
            .order_by(metric_points.c.ts.desc())
            .limit(limit)
        ).all()
    return [(float(ts), float(v)) for ts, v in reversed(rows)]


def names(engine: Engine, region: str, resolution: float, since: float) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(metric_points.c.name)
            .distinct()
            .where(
                metric_points.c.region == region,
                metric_points.c.resolution == resolution,
                metric_points.c.ts >= since,
            )
            .order_by(metric_points.c.name)
        ).all()
    return [str(r[0]) for r in rows]
