"""Streaming anomaly detectors: ``update(t, value) -> score in [0, 1]``, causal, O(1) memory."""

from steadymail.monitor.anomaly.base import Detector, make_detector, names

__all__ = ["Detector", "make_detector", "names"]
