"""Each detector's constants to choose among under cross-validation (`steadymail nab cv`).

The first setting is the detector's default. A grid is small on purpose: every setting runs
over the whole corpus once, and a wide grid chosen on few files overfits as surely as
constants chosen by hand.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

from steadymail.monitor.anomaly import seasonal
from steadymail.monitor.anomaly.base import Detector, make_detector
from steadymail.monitor.anomaly.combined import SEASONAL_WEIGHT, CombinedDetector
from steadymail.monitor.anomaly.ewma import EwmaDetector
from steadymail.monitor.anomaly.novelty import (
    LEVEL_SCALE,
    NOVELTY_WEIGHT,
    OPS_LEVEL_SCALE,
    OPS_REST,
    REST,
    SMOOTH,
    NoveltyDetector,
    operations,
)

Setting = tuple[str, Callable[[], Detector]]


def _novelty() -> list[Setting]:
    out: list[Setting] = []
    for rest, weight, scale, smoothing in itertools.product(
        (REST, 100, 400), (NOVELTY_WEIGHT, 0.4, 0.8), (LEVEL_SCALE, 3.0, 12.0), (SMOOTH, 1.0)
    ):
        label = (
            f"rest={rest} novelty_weight={weight:g} level_scale={scale:g} smoothing={smoothing:g}"
        )
        make = functools.partial(
            NoveltyDetector,
            rest=rest,
            novelty_weight=weight,
            level_scale=scale,
            smoothing=smoothing,
        )
        out.append((label, make))
    return out


def _combined() -> list[Setting]:
    out: list[Setting] = []
    for slots, alpha, weight in itertools.product(
        (seasonal.SLOTS, 48), (seasonal.ALPHA, 0.1), (SEASONAL_WEIGHT, 0.8)
    ):
        label = f"slots={slots} alpha={alpha:g} seasonal_weight={weight:g}"
        make = functools.partial(CombinedDetector, slots=slots, alpha=alpha, seasonal_weight=weight)
        out.append((label, make))
    return out


def _operations() -> list[Setting]:
    # The monitor runs the preset with no rest of its own (an open alert is its refractory
    # period); under NAB's scoring the rest decides how soon a second fault can count.
    out: list[Setting] = []
    for rest, scale in itertools.product((OPS_REST, 100, REST), (OPS_LEVEL_SCALE, 4.0)):
        label = f"rest={rest} level_scale={scale:g}"
        out.append((label, functools.partial(operations, rest=rest, level_scale=scale)))
    return out


def _ewma() -> list[Setting]:
    return [(f"alpha={a:g}", functools.partial(EwmaDetector, a)) for a in (0.01, 0.001, 0.1)]


def settings_of(name: str) -> list[Setting]:
    """The settings of detector ``name`` (``KeyError`` for an unknown one), default first."""
    if name == "steadymail":
        return _combined()
    if name == "steadymail-novelty":
        return _novelty()
    if name == "steadymail-ops":
        return _operations()
    if name == "ewma":
        return _ewma()
    make_detector(name)  # raises KeyError for a name no registry knows
    return [("default", functools.partial(make_detector, name))]
