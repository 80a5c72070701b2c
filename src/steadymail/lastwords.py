"""Last words: how a process that dies of an exception says why before it goes.

`describe` turns an exception into one line that names the innermost frame of our own code
(`tracking/rewrite.py:42 in rewrite_html raised KeyError: 'href'`); `frames` gives the few
innermost frames of ours for the alert's detail. Writing them down is the presence's job
(presence.py), which knows the process's instance.
"""

from __future__ import annotations

import traceback
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
MAX_REASON = 200


def _ours(filename: str) -> str | None:
    try:
        return str(Path(filename).resolve().relative_to(_PACKAGE))
    except ValueError:
        return None


def frames(exc: BaseException, limit: int = 3) -> list[str]:
    """The innermost frames of steadymail's own code, innermost first."""
    out = []
    for f in reversed(traceback.extract_tb(exc.__traceback__)):
        rel = _ours(f.filename)
        if rel is not None:
            out.append(f"{rel}:{f.lineno} in {f.name}")
        if len(out) == limit:
            break
    return out


def describe(exc: BaseException) -> str:
    """One line: where in our code, what was raised, and its message."""
    message = str(exc).replace("\n", " ").strip()
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    ours = frames(exc, 1)
    line = f"{ours[0]} raised {what}" if ours else f"raised {what}"
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def full(exc: BaseException) -> str:
    """The reason line and the innermost frames of ours, for the alert's detail."""
    chain = frames(exc)
    return describe(exc) + (" (via " + " <- ".join(chain[1:]) + ")" if len(chain) > 1 else "")
