"""Anomaly alerts from the region's own series: one streaming detector per series.

A series fires when its detector scores at or above ``anomaly_threshold`` and the value is at
least ``anomaly_min_sigma`` standard deviations from its usual level (the detector flags new
extremes of plain noise now and then; an operator is paged for a change); the alert carries the
series, the interval (window), the score, the value and the usual level. It resolves when the
value has been back inside its pre-anomaly band for ``anomaly_resolve_after`` intervals, so a
throughput that halved and stays halved keeps its alert open (the detector itself learns the
new level and goes quiet, which is right for detection and wrong for resolution).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from steadymail.config import Settings
from steadymail.monitor.anomaly import Detector, make_detector
from steadymail.monitor.anomaly.moments import ew_step
from steadymail.monitor.anomaly.novelty import operations
from steadymail.monitor.series import Interval
from steadymail.monitor.signals import Signal

# Series the detectors watch, and when an interval says something about each.
WATCHED = ("throughput", "deferral_rate", "failure_rate", "smtp_latency_ms")
_UNITS = {"throughput": "msg/s", "smtp_latency_ms": "ms"}
MIN_ATTEMPTS = 20  # fewer attempts in an interval make a rate noise


def eligible(series: str, interval: Interval) -> bool:
    v = interval.values
    if series not in v:
        return False
    if series == "throughput":
        return interval.backlogged
    if series == "smtp_latency_ms":
        return v.get("smtp_count", 0.0) >= MIN_ATTEMPTS
    return v.get("attempts", 0.0) >= MIN_ATTEMPTS


@dataclass
class _Series:
    detector: Detector
    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    open_band: tuple[float, float] | None = None  # while firing: the pre-anomaly band
    inside: int = 0
    open_for: int = 0
    score: float = 0.0
    fed: int = 0

    def learn(self, value: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = value
            return
        # Winsorised, so one odd interval does not widen the usual band for long.
        clip = 4.0 if self.n > 5 else None
        self.mean, self.var = ew_step(self.mean, self.var, value - self.mean, 0.05, clip)

    def deviation(self, value: float) -> float:
        """How many standard deviations of its usual self ``value`` is away (0 if unknown)."""
        if self.n < 2:
            return 0.0
        sd = max(math.sqrt(self.var), 1e-3 * abs(self.mean), 1e-12)
        return abs(value - self.mean) / sd

    def band(self) -> tuple[float, float]:
        half = max(3.0 * math.sqrt(self.var), 0.1 * abs(self.mean), 1e-9)
        return self.mean - half, self.mean + half


def _fmt(series: str, value: float) -> str:
    if series.endswith("_rate"):
        return f"{100 * value:.1f}%"
    return f"{value:.1f} {_UNITS.get(series, '')}".strip()


class AnomalyWatcher:
    def __init__(self, settings: Settings, watched: Iterable[str] = WATCHED) -> None:
        self._s = settings
        self._series = {name: _Series(self._detector()) for name in watched}

    def _detector(self) -> Detector:
        s = self._s
        if s.anomaly_detector == "steadymail-ops":
            # No refractory period inside the detector: a high score the sigma gate holds back
            # must not silence the series; an open alert is the refractory period here.
            return operations(warmup=s.anomaly_warmup, rest=0, fire_at=s.anomaly_threshold)
        return make_detector(s.anomaly_detector)

    def learning(self) -> dict[str, int]:
        """Eligible intervals each series still needs before its detector scores."""
        need = 2 * self._s.anomaly_warmup
        return {name: max(0, need - st.fed) for name, st in self._series.items()}

    def scores(self) -> dict[str, float]:
        return {name: st.score for name, st in self._series.items()}

    def prime(self, intervals: Iterable[Interval]) -> None:
        """Replay stored history into the detectors without alerting (a monitor restart)."""
        for interval in intervals:
            for name, st in self._series.items():
                if eligible(name, interval):
                    value = interval.values[name]
                    st.detector.update(interval.start, value)
                    st.fed += 1
                    st.learn(value)

    def observe(self, interval: Interval) -> list[Signal]:
        out: list[Signal] = []
        region = self._s.region
        for name, st in self._series.items():
            if not eligible(name, interval):
                continue
            value = interval.values[name]
            score = st.detector.update(interval.start, value)
            st.score = score
            st.fed += 1
            fp = f"anomaly:{region}:{name}"
            if (
                score >= self._s.anomaly_threshold
                and st.open_band is None
                and st.deviation(value) >= self._s.anomaly_min_sigma
            ):
                st.open_band, st.inside = st.band(), 0
                end = interval.start + self._s.metrics_interval
                out.append(
                    Signal(
                        fp,
                        "metric_anomaly",
                        "warning",
                        f"{name} anomaly in {region}: {_fmt(name, value)} against a usual "
                        f"{_fmt(name, st.mean)} (score {score:.2f})",
                        {
                            "region": region,
                            "series": name,
                            "window_start": interval.start,
                            "window_end": end,
                            "score": round(score, 4),
                            "value": value,
                            "usual": st.mean,
                        },
                    )
                )
            elif st.open_band is not None:
                lo, hi = st.open_band
                st.inside = st.inside + 1 if lo <= value <= hi else 0
                st.open_for += 1
                detail = ""
                if st.inside >= self._s.anomaly_resolve_after:
                    detail = f"{name} back to {_fmt(name, value)} for {st.inside} intervals"
                elif st.open_for >= self._s.anomaly_rest:
                    # As long as the detector's rest: the new level is the series' level now.
                    detail = f"{name} has held {_fmt(name, value)} for {st.open_for} intervals"
                    st.mean, st.var, st.n = value, 0.0, 1
                if detail:
                    st.open_band, st.open_for = None, 0
                    out.append(Signal(fp, "metric_anomaly", resolve=True, detail=detail))
            if st.open_band is None and score < self._s.anomaly_threshold:
                # The usual level is learned from normal intervals only: not from an open
                # alert's, and not from one the detector already finds anomalous. A change that
                # lands across two intervals (a half-slowed one, then the full drop) otherwise
                # widens the band with its first step and slips under the sigma gate with the
                # second (seen: halved throughput at 3.7 sigma instead of 7).
                st.learn(value)
        return out
