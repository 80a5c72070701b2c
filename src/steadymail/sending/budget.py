"""Render budgets: the limits one render lives within, and the checks that enforce them.

Each check runs *before* the operation it guards (a string repetition, a padding width, a
``replace``), from the sizes of its operands, so a refused operation costs nothing. The
sandbox (sandbox.py) calls these from its operators, filters and method calls.
"""

import math
import re
import string
import threading
from collections import deque
from collections.abc import Collection
from typing import Any, TypeGuard

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace
from markupsafe import Markup

# Characters one rendered part may have; also the cap on any one string a template builds.
MAX_OUTPUT = 1_000_000
# All text one render may build, buffered pieces included (a macro's output counts once in
# the macro and once more where it is used).
MAX_BUFFERED = 4 * MAX_OUTPUT
# Items in one list, and elements visited when checking what a container would print as.
MAX_ITEMS = 100_000
# Integers past this many bits are refused: 3,000 digits is more than any email needs.
MAX_INT_BITS = 10_000


class BudgetExceeded(SecurityError):
    """A template asked for more than a render's budget allows."""


_meter = threading.local()


def start_meter() -> None:
    """Begin counting the text this thread's render builds."""
    _meter.spent = 0


def stop_meter() -> None:
    """Stop counting (outside a render, buffers count nothing)."""
    _meter.spent = None


def _spend(n: int) -> None:
    spent = getattr(_meter, "spent", None)
    if spent is None:
        return
    spent += n
    if spent > MAX_BUFFERED:
        raise BudgetExceeded(f"template builds more than {MAX_BUFFERED} characters")
    _meter.spent = spent


class MeteredBuffer(list[Any]):
    """The list a buffered frame (macro, call block, ``{% set %}`` block) collects text in."""

    def append(self, item: Any) -> None:
        _spend(len(item) if isinstance(item, str) else 0)
        super().append(item)

    def extend(self, items: Any) -> None:
        items = tuple(items)
        _spend(sum(len(i) for i in items if isinstance(i, str)))
        super().extend(items)


def check_size(n: int, what: str, limit: int = MAX_OUTPUT) -> None:
    """Refuse a result of ``n`` characters (or items) past ``limit``."""
    if n > limit:
        raise BudgetExceeded(f"{what} would have {n} elements/characters (limit {limit})")


# Concrete types (dict views included), not ABCs: this check runs on every printed value.
WALKED: tuple[type[Collection[Any]], ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    deque,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_LEAVES = frozenset({str, Markup, int, float, bool, type(None)})


def check_printable(value: Any) -> int:
    """About how many characters ``value`` prints as; refused past the output budget.

    Walks at most 2 * MAX_ITEMS elements: containers that share references (``[a, a]`` nested)
    print exponentially long while holding few objects."""
    if type(value) in _LEAVES or not isinstance(value, (*WALKED, Namespace)):
        return _leaf_size(value)
    stack: list[Any] = [value]
    visited = chars = 0
    while stack:
        v = stack.pop()
        visited += 1
        if visited > 2 * MAX_ITEMS:
            raise BudgetExceeded(
                f"a value with more than {2 * MAX_ITEMS} elements cannot be printed"
            )
        if isinstance(v, Namespace):
            stack.append(object.__getattribute__(v, "_Namespace__attrs"))
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, WALKED):
            stack.extend(v)
        else:
            chars += _leaf_size(v)
            if chars > MAX_OUTPUT:
                raise BudgetExceeded(f"a value printing past {MAX_OUTPUT} characters")
    return chars


def _leaf_size(v: Any) -> int:
    if isinstance(v, str):
        return len(v)
    if isinstance(v, int):
        return v.bit_length() * 3 // 10 + 1  # about 0.3 digits per bit
    return 24  # a float, None, an object's short repr


def _check_formatted(fmt: str, fields: int, values: list[Any]) -> None:
    """A format's result: at most its text plus, per field, the longest value printed."""
    longest = max((check_printable(v) for v in values), default=0)
    check_size(len(fmt) + fields * longest, "a formatted string")


def _check_int_product(a: int, b: int) -> None:
    if a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"integer product past {MAX_INT_BITS} bits")


def check_pow(base: Any, exp: Any) -> None:
    """``**``: refuse integer powers past MAX_INT_BITS (floats overflow on their own)."""
    big = isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1
    if big and exp * math.log2(abs(base)) > MAX_INT_BITS:
        raise BudgetExceeded(f"power past {MAX_INT_BITS} bits")


def is_int(v: Any) -> TypeGuard[int]:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def check_mul(left: Any, right: Any) -> None:
    """``*``: integer products, and string or list repetition."""
    if is_int(left) and is_int(right):
        _check_int_product(left, right)
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and is_int(n):
            limit = MAX_OUTPUT if isinstance(seq, str) else MAX_ITEMS
            check_size(len(seq) * max(n, 0), "a repetition", limit)


def check_add(left: Any, right: Any) -> None:
    """``+``: string and list concatenation."""
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        limit = MAX_OUTPUT if isinstance(left, str) else MAX_ITEMS
        check_size(len(left) + len(right), "a concatenation", limit)


# printf-style conversion: flags, width, precision. The mapping key's length is bounded so the
# scan stays linear: with `[^)]*`, a run of "%(" without ")" was quadratic (40k pairs, 1.2 s).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]{0,200}\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?")


def check_percent_format(fmt: str, values: Any = ()) -> None:
    """``fmt % values``: refuse huge widths or precisions, and results past the output budget
    (``"%(a)s" * 100 % {"a": long}`` repeats one long value)."""
    conversions = 0
    for m in _PERCENT_SPEC.finditer(fmt):
        conversions += 1
        for field in m.groups():
            if field == "*":
                raise BudgetExceeded("'*' widths are not allowed in templates")
            if field and (len(field) > 7 or int(field) > MAX_OUTPUT):
                raise BudgetExceeded(f"format width {field[:20]} is too large")
    if isinstance(values, dict):
        items = list(values.values())
    elif isinstance(values, tuple):
        items = list(values)
    else:
        items = [values]
    _check_formatted(fmt, conversions, items)


_SPEC_NUMBER = re.compile(r"\d+")


def check_brace_format(fmt: str) -> int:
    """``str.format``: refuse huge widths, or widths taken from arguments; returns the number
    of replacement fields, for ``check_brace_result``."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return 0  # str.format raises the same error itself
    count = 0
    for _, name, spec, _ in fields:
        count += name is not None
        if not spec:
            continue
        if "{" in spec:
            raise BudgetExceeded("nested format fields are not allowed in templates")
        for number in _SPEC_NUMBER.findall(spec):
            if len(number) > 7 or int(number) > MAX_OUTPUT:
                raise BudgetExceeded(f"format width {number[:20]} is too large")
    return count


def check_brace_result(fmt: str, fields: int, values: list[Any]) -> None:
    """``fmt.format(...)``: refuse a result past the output budget (``"{0}" * 100`` repeats one
    argument a hundred times)."""
    _check_formatted(fmt, fields, values)


def count_lines(s: str) -> int:
    """Lines in ``s``, as an indent or a wrap would see them."""
    return s.count("\n") + 1


def check_str_method(name: str, s: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound the result of the str methods whose output can dwarf their input."""
    a = list(args) + list(kwargs.values())
    if name in ("center", "ljust", "rjust", "zfill") and a and is_int(a[0]):
        check_size(a[0], f"str.{name}")
    elif name == "expandtabs":
        tab = a[0] if a and is_int(a[0]) else 8
        check_size(len(s) + s.count("\t") * max(tab, 0), "str.expandtabs")
    elif name == "replace" and len(a) >= 2 and isinstance(a[0], str) and isinstance(a[1], str):
        count = a[2] if len(a) > 2 and is_int(a[2]) and a[2] >= 0 else None
        check_replace(s, a[0], a[1], count)
    elif name == "join" and a:
        check_printable(a[0])
        items: list[Any] = list(a[0]) if isinstance(a[0], WALKED) else []
        check_size(len(s) * max(len(items) - 1, 0), "str.join")
    elif name == "translate" and a and isinstance(a[0], dict):
        longest = max((len(v) for v in a[0].values() if isinstance(v, str)), default=1)
        check_size(len(s) * longest, "str.translate")


def check_replace(s: str, old: str, new: str, count: int | None) -> None:
    """Refuse a ``replace`` whose result would pass the output budget."""
    hits = s.count(old) if old else len(s) + 1
    if count is not None:
        hits = min(hits, count)
    check_size(len(s) + hits * max(len(new) - len(old), 0), "a replace")


STR_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
)
