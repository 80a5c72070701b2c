"""The monitor's anomaly alerting on synthetic region traffic. Prints one figure a line:

  intervals                       fault-free intervals watched (runs x intervals per run)
  false_alerts                    metric_anomaly alerts raised on them (noise only)
  false_alerts_per_day_5s         the same, per day of 5-second intervals
  halved_throughput_detected      runs where a halved throughput alerted within 2 intervals
  tripled_deferrals_detected      runs where a tripled deferral rate alerted within 2 intervals
  reference_false_alerts          the same noise through a plain 4-sigma z-score rule (ewma)
  false_alert_ratio               ours / reference

Traffic: 500 +- 15 attempts per interval, 5 % deferred (binomial-like noise), backlogged.
Usage: python bench/anomaly_alerts.py [--runs 20] [--intervals 3000]
"""

import argparse
import math
import random

from steadymail.config import Settings
from steadymail.monitor.anomaly_watch import AnomalyWatcher
from steadymail.monitor.series import Interval, derive

INTERVAL = 5.0


def _interval(i: int, attempts: float, rate: float, rng: random.Random) -> Interval:
    deferred = max(0.0, attempts * rate + rng.gauss(0, math.sqrt(attempts * rate)))
    raw = {"sent": attempts - deferred, "deferred": deferred, "smtp_count": attempts}
    raw["smtp_seconds"] = attempts * 0.02
    return Interval(i * INTERVAL, derive(raw, INTERVAL), True)


def _traffic(
    rng: random.Random, n: int, start: int = 0, scale: float = 1.0, rate: float = 0.05
) -> list[Interval]:
    return [
        _interval(i, (500 + rng.gauss(0, 15)) * scale, rate, rng) for i in range(start, start + n)
    ]


def _alerts(watcher: AnomalyWatcher, intervals: list[Interval]) -> list[tuple[int, str]]:
    out = []
    for i, interval in enumerate(intervals):
        out += [
            (i, str(s.labels["series"]))
            for s in watcher.observe(interval)
            if not s.resolve and not s.note
        ]
    return out


def _zscore_false_alerts(intervals: list[Interval]) -> int:
    """Reference: alert when a series is 4 sigma from its EW mean (no alert while one is open
    for 12 intervals), on the same series the monitor watches."""
    alerts = 0
    for name in ("throughput", "deferral_rate", "smtp_latency_ms"):
        mean = var = 0.0
        quiet = 0
        for n, interval in enumerate(intervals):
            v = interval.values[name]
            if n == 0:
                mean = v
                continue
            sd = math.sqrt(var)
            if n > 50 and sd > 0 and abs(v - mean) > 4 * sd and quiet == 0:
                alerts += 1
                quiet = 12
            quiet = max(0, quiet - 1)
            d = v - mean
            mean += 0.05 * d
            var = 0.95 * (var + 0.05 * d * d)
    return alerts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--intervals", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings(metrics_interval=INTERVAL)
    false = reference = halved = tripled = 0
    for run in range(args.runs):
        rng = random.Random(run)
        normal = _traffic(rng, args.intervals)
        false += len(_alerts(AnomalyWatcher(settings), normal))
        reference += _zscore_false_alerts(normal)
        for kind in ("halved", "tripled"):
            rng = random.Random(1000 + run)
            watcher = AnomalyWatcher(settings)
            _alerts(watcher, _traffic(rng, 400))
            change = (
                _traffic(rng, 5, 400, scale=0.5)
                if kind == "halved"
                else _traffic(rng, 5, 400, rate=0.15)
            )
            series = "throughput" if kind == "halved" else "deferral_rate"
            hit = any(i <= 1 and s == series for i, s in _alerts(watcher, change))
            halved += hit and kind == "halved"
            tripled += hit and kind == "tripled"
    watched = args.runs * args.intervals
    print(f"intervals {watched}")
    print(f"false_alerts {false}")
    print(f"false_alerts_per_day_5s {false / watched * 86400 / INTERVAL:.3f}")
    print(f"halved_throughput_detected {halved}/{args.runs}")
    print(f"tripled_deferrals_detected {tripled}/{args.runs}")
    print(f"reference_false_alerts {reference}")
    print(f"false_alert_ratio {false / reference if reference else float('nan'):.3f}")


if __name__ == "__main__":
    main()
