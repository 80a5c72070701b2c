"""Anomaly detector speed, one series on one core. Prints one figure a line:

  data                        what was fed: the NAB subset's values, or "synthetic" (and why)
                              when there is no corpus at --corpus
  points                      points fed to each detector (the data's values, repeated)
  steadymail_points_per_s     the product's detector (CombinedDetector.update)
  steadymail_novelty_points_per_s  its novelty part alone
  steadymail_ops_points_per_s the monitor's preset
  ewma_points_per_s           a plain EW z-score detector, the reference in this run
  ratio_to_ewma               steadymail / ewma
  loop_points_per_s           the bare loop with a no-op update (the interpreter's ceiling)

Aim: steadymail_points_per_s >= 50,000.
Usage: python bench/anomaly.py [--corpus ../shared/data/nab] [--points 1000000] [--repeat 3]
"""

import argparse
import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from steadymail.monitor.anomaly import Detector, make_detector
from steadymail.monitor.nab.corpus import iter_series


class _Noop:
    def update(self, timestamp: datetime | float, value: float) -> float:
        return 0.0


def _values(corpus: Path, points: int) -> tuple[list[float], str]:
    """The values to feed, and what they are."""
    base: list[float] = []
    if (corpus / "data").is_dir():
        files = 0
        for series in iter_series(corpus):
            base += series.values
            files += 1
        what = f"nab {files} files, {len(base)} values from {corpus}"
    else:  # no corpus here: a daily cycle with noise-like wobble
        base = [100 + 20 * math.sin(i / 40) + (i * 7919 % 13) for i in range(100_000)]
        what = f"synthetic (no NAB corpus at {corpus}): a sine cycle with wobble"
    out: list[float] = []
    while len(out) < points:
        out += base
    return out[:points], what


def _rate(make: Callable[[], Detector], values: list[float], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        det = make()
        update = det.update
        started = time.perf_counter()
        for i, v in enumerate(values):
            update(i, v)
        best = min(best, time.perf_counter() - started)
    return len(values) / best


PARTS = ("steadymail-novelty", "steadymail-ops")  # the novelty part alone; the monitor's preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=Path("../shared/data/nab"))
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    values, what = _values(args.corpus, args.points)
    print(f"data {what}")
    ours = _rate(lambda: make_detector("steadymail"), values, args.repeat)
    parts = {n: _rate(lambda n=n: make_detector(n), values, args.repeat) for n in PARTS}
    ewma = _rate(lambda: make_detector("ewma"), values, args.repeat)
    loop = _rate(_Noop, values, args.repeat)
    print(f"points {len(values)}")
    print(f"steadymail_points_per_s {ours:.0f}")
    for n, rate in parts.items():
        print(f"{n.replace('-', '_')}_points_per_s {rate:.0f}")
    print(f"ewma_points_per_s {ewma:.0f}")
    print(f"ratio_to_ewma {ours / ewma:.3f}")
    print(f"loop_points_per_s {loop:.0f}")


if __name__ == "__main__":
    main()
