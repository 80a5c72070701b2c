"""Number options: Python's float() accepts nan and inf, which no option of ours means."""

import json
import math
from typing import Any

import typer


def finite(value: float | None) -> float | None:
    """Typer callback for float options: refuse NaN and infinities with a usage error."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _refuse_constant(name: str) -> Any:
    raise typer.BadParameter(f"{name} is not a finite number")


def loads_finite(text: str) -> Any:
    """`json.loads`, refusing NaN and Infinity (which it accepts and JSON does not have)."""
    return json.loads(text, parse_constant=_refuse_constant)
