"""The detector protocol and the registry of detectors by name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol


class Detector(Protocol):
    """A streaming detector for one series: sees each point once, in order, and nothing after it."""

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Score the point in [0, 1]; higher is more anomalous."""
        ...


def _registry() -> dict[str, Callable[[], Detector]]:
    from steadymail.monitor.anomaly.combined import CombinedDetector
    from steadymail.monitor.anomaly.ewma import EwmaDetector
    from steadymail.monitor.anomaly.novelty import NoveltyDetector, operations

    return {
        "steadymail": CombinedDetector,
        "steadymail-ops": operations,
        "steadymail-novelty": NoveltyDetector,
        "ewma": EwmaDetector,
    }


def names() -> list[str]:
    """The detectors ``make_detector`` knows, the product's own first."""
    return list(_registry())


def make_detector(name: str) -> Detector:
    """A fresh detector by name; ``KeyError`` names the known ones."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(registry)}")
    return registry[name]()
