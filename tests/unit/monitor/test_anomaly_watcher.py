"""The anomaly watcher on synthetic intervals: fires within two intervals, resolves sensibly."""

import random

from steadymail.config import Settings
from steadymail.metrics import SeriesBuffer
from steadymail.monitor.anomaly_watch import AnomalyWatcher
from steadymail.monitor.series import Interval, derive

INTERVAL = 5.0


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = dict(
        metrics_interval=INTERVAL, anomaly_warmup=50, anomaly_rest=40, anomaly_resolve_after=3
    )
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def _interval(i: int, sent: float, deferred: float, backlogged: bool = True) -> Interval:
    raw = {"sent": sent, "deferred": deferred, "smtp_count": sent + deferred}
    raw["smtp_seconds"] = raw["smtp_count"] * 0.01
    return Interval(i * INTERVAL, derive(raw, INTERVAL), backlogged)


def _run(watcher: AnomalyWatcher, intervals: list[Interval]) -> list[tuple[int, str, bool, str]]:
    fired = []
    for i, interval in enumerate(intervals):
        for s in watcher.observe(interval):
            fired.append((i, str(s.labels.get("series", s.fingerprint)), s.resolve, s.summary))
    return fired


def _normal(rng: random.Random, n: int, start: int = 0, rate: float = 0.05) -> list[Interval]:
    out = []
    for i in range(start, start + n):
        attempts = 500 + rng.gauss(0, 15)
        deferred = max(0.0, attempts * rate + rng.gauss(0, (attempts * rate) ** 0.5))
        out.append(_interval(i, attempts - deferred, deferred))
    return out


def test_derive_leaves_undefined_rates_out() -> None:
    values = derive({"sent": 10.0}, 5.0)
    assert values["throughput"] == 2.0 and values["deferral_rate"] == 0.0
    assert "smtp_latency_ms" not in derive({"sent": 0.0}, 5.0)
    assert "deferral_rate" not in derive({}, 5.0)


def test_series_buffer_drains_only_finished_intervals() -> None:
    buf = SeriesBuffer(5.0)
    buf.add("sent", 1, now=1.0)
    buf.add("sent", 2, now=4.9)
    buf.add("sent", 4, now=5.1)
    assert buf.drain(now=6.0) == [(0, "sent", 3.0)]
    assert buf.drain(now=6.0) == []
    assert buf.drain() == [(1, "sent", 4.0)]


def test_halved_throughput_fires_within_two_intervals_and_no_false_alarm() -> None:
    rng = random.Random(11)
    watcher = AnomalyWatcher(_settings())
    normal = _normal(rng, 400)
    assert _run(watcher, normal) == [], "false alarm on normal traffic"
    change = 400
    halved = []
    for i in range(change, change + 10):
        attempts = 250 + rng.gauss(0, 8)
        halved.append(_interval(i, attempts * 0.95, attempts * 0.05))
    fired = _run(watcher, halved)
    throughput = [f for f in fired if f[1] == "throughput" and not f[2]]
    assert throughput, fired
    assert throughput[0][0] <= 1, f"fired {throughput[0][0] + 1} intervals after the change"
    assert "throughput anomaly" in throughput[0][3]


def test_tripled_deferral_rate_fires_within_two_intervals() -> None:
    rng = random.Random(5)
    watcher = AnomalyWatcher(_settings())
    assert _run(watcher, _normal(rng, 400, rate=0.05)) == []
    fired = _run(watcher, _normal(rng, 10, start=400, rate=0.15))
    deferral = [f for f in fired if f[1] == "deferral_rate" and not f[2]]
    assert deferral and deferral[0][0] <= 1, fired


def test_alert_stays_open_while_the_level_stays_changed_and_resolves_on_return() -> None:
    rng = random.Random(3)
    watcher = AnomalyWatcher(_settings())
    _run(watcher, _normal(rng, 400))
    halved = [_interval(i, 250 + rng.gauss(0, 8), 0) for i in range(400, 420)]
    fired = _run(watcher, halved)
    assert [f for f in fired if f[1] == "throughput" and not f[2]]
    assert not [f for f in fired if f[2] and "throughput" in f[1]], "resolved while still halved"
    back = _run(watcher, _normal(rng, 10, start=420))
    resolved = [f for f in back if f[2] and "throughput" in f[1]]
    assert resolved and resolved[0][0] == 2  # after anomaly_resolve_after = 3 intervals back


def test_throughput_outside_a_backlog_is_not_judged() -> None:
    rng = random.Random(9)
    watcher = AnomalyWatcher(_settings())
    _run(watcher, _normal(rng, 400))
    # The tail of a campaign: little left to send, no backlog.
    tail = [_interval(i, 30.0, 0.0, backlogged=False) for i in range(400, 410)]
    assert not [f for f in _run(watcher, tail) if f[1] == "throughput"]
