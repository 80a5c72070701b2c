"""The template sandbox, with budgets: no template can make one render take unbounded work.

Jinja's own sandbox stops templates reaching Python internals, not templates that ask for a
googol of work. This one also:

- never folds constants at compile time (``9**(9**9)`` would run while *compiling*);
- refuses, before they run, the operations whose result could be huge: big powers and
  products of integers, repeating or concatenating strings and lists past a size, padding and
  indenting widths, ``replace``/``join``/``translate`` results, format widths;
- refuses to stringify containers that would expand past the output budget (shared
  references make ``str([a, a])`` exponential in the nesting);
- counts every piece of text the template buffers (macros, ``{% set %}`` blocks), so the
  text one render builds is bounded, not only what it finally returns.

Time is bounded elsewhere (``deadline.py``): loops and recursion are cheap to write.
"""

import inspect
import math
import re
import string
import threading
from collections import deque
from collections.abc import Callable, ItemsView, KeysView, ValuesView
from typing import Any, TypeGuard

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

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
    _meter.spent = None


def _spend(n: int) -> None:
    spent = getattr(_meter, "spent", None)
    if spent is None:
        return
    spent += n
    if spent > MAX_BUFFERED:
        raise BudgetExceeded(f"template builds more than {MAX_BUFFERED} characters")
    _meter.spent = spent


class _MeteredBuffer(list[Any]):
    """The list a buffered frame (macro, call block, ``{% set %}`` block) collects text in."""

    def append(self, item: Any) -> None:
        _spend(len(item) if isinstance(item, str) else 0)
        super().append(item)

    def extend(self, items: Any) -> None:
        items = tuple(items)
        _spend(sum(len(i) for i in items if isinstance(i, str)))
        super().extend(items)


def check_size(n: int, what: str, limit: int = MAX_OUTPUT) -> None:
    if n > limit:
        raise BudgetExceeded(f"{what} would have {n} elements/characters (limit {limit})")


_WALKED = (list, tuple, set, frozenset, dict, deque, KeysView, ValuesView, ItemsView)


def check_printable(value: Any) -> None:
    """Refuse a container whose printed form would pass the output budget.

    Walks at most MAX_ITEMS elements: containers that share references (``[a, a]`` nested)
    print exponentially long while holding few objects."""
    if isinstance(value, str) or not isinstance(value, (*_WALKED, Namespace)):
        return
    stack, visited, chars = [value], 0, 0
    while stack:
        v = stack.pop()
        visited += 1
        if visited > 2 * MAX_ITEMS:
            raise BudgetExceeded(f"a value with more than {MAX_ITEMS} elements cannot be printed")
        if isinstance(v, str | int):
            # An int prints about 0.3 digits per bit.
            chars += len(v) if isinstance(v, str) else v.bit_length() * 3 // 10 + 1
            if chars > MAX_OUTPUT:
                raise BudgetExceeded(f"a value printing past {MAX_OUTPUT} characters")
        elif isinstance(v, Namespace):
            stack.append(object.__getattribute__(v, "_Namespace__attrs"))
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, _WALKED):
            stack.extend(v)


def _check_int_product(a: int, b: int) -> None:
    if a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"integer product past {MAX_INT_BITS} bits")


def _check_pow(base: Any, exp: Any) -> None:
    big = isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1
    if big and exp * math.log2(abs(base)) > MAX_INT_BITS:
        raise BudgetExceeded(f"power past {MAX_INT_BITS} bits")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_mul(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        _check_int_product(left, right)
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and _is_int(n):
            limit = MAX_OUTPUT if isinstance(seq, str) else MAX_ITEMS
            check_size(len(seq) * max(n, 0), "a repetition", limit)


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        limit = MAX_OUTPUT if isinstance(left, str) else MAX_ITEMS
        check_size(len(left) + len(right), "a concatenation", limit)


# printf-style conversion: flags, width, precision.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?")


def check_percent_format(fmt: str) -> None:
    """Refuse ``%`` formats whose widths or precisions would make huge output."""
    for m in _PERCENT_SPEC.finditer(fmt):
        for field in m.groups():
            if field == "*":
                raise BudgetExceeded("'*' widths are not allowed in templates")
            if field and (len(field) > 7 or int(field) > MAX_OUTPUT):
                raise BudgetExceeded(f"format width {field[:20]} is too large")


_SPEC_NUMBER = re.compile(r"\d+")


def check_brace_format(fmt: str) -> None:
    """Refuse ``str.format`` specs with huge widths, or widths taken from arguments."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise BudgetExceeded("nested format fields are not allowed in templates")
        for number in _SPEC_NUMBER.findall(spec):
            if len(number) > 7 or int(number) > MAX_OUTPUT:
                raise BudgetExceeded(f"format width {number[:20]} is too large")


def _lines(s: str) -> int:
    return s.count("\n") + 1


def _check_str_method(name: str, s: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound the result of the str methods whose output can dwarf their input."""
    a = list(args) + list(kwargs.values())
    if name in ("center", "ljust", "rjust", "zfill") and a and _is_int(a[0]):
        check_size(a[0], f"str.{name}")
    elif name == "expandtabs":
        tab = a[0] if a and _is_int(a[0]) else 8
        check_size(len(s) + s.count("\t") * max(tab, 0), "str.expandtabs")
    elif name == "replace" and len(a) >= 2 and isinstance(a[0], str) and isinstance(a[1], str):
        count = a[2] if len(a) > 2 and _is_int(a[2]) and a[2] >= 0 else None
        _check_replace(s, a[0], a[1], count)
    elif name == "join" and a:
        check_printable(a[0])
        items = list(a[0]) if isinstance(a[0], _WALKED) else []
        check_size(len(s) * max(len(items) - 1, 0), "str.join")
    elif name == "translate" and a and isinstance(a[0], dict):
        longest = max((len(v) for v in a[0].values() if isinstance(v, str)), default=1)
        check_size(len(s) * longest, "str.translate")


def _check_replace(s: str, old: str, new: str, count: int | None) -> None:
    hits = s.count(old) if old else len(s) + 1
    if count is not None:
        hits = min(hits, count)
    check_size(len(s) + hits * max(len(new) - len(old), 0), "a replace")


_STR_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
)


# --- filters: each check gets the filter's own arguments, by name ----------------------------


def _f_center(a: dict[str, Any]) -> None:
    width = a.get("width", 80)
    if _is_int(width):
        check_size(width, "center")


def _f_indent(a: dict[str, Any]) -> None:
    s, width = str(a["s"]), a.get("width", 4)
    w = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    check_size(len(s) + _lines(s) * w, "indent")


def _f_wordwrap(a: dict[str, Any]) -> None:
    s, wrap = str(a["s"]), a.get("wrapstring") or "\n"
    check_size(len(s) * (1 + len(str(wrap))), "wordwrap")


def _f_replace(a: dict[str, Any]) -> None:
    count = a.get("count")
    _check_replace(str(a["s"]), str(a["old"]), str(a["new"]), count if _is_int(count) else None)


def _f_format(a: dict[str, Any]) -> None:
    check_percent_format(str(a["value"]))


def _f_batch(a: dict[str, Any]) -> None:
    check_size(a["linecount"], "batch", MAX_ITEMS)


def _f_slice(a: dict[str, Any]) -> None:
    check_size(a["slices"], "slice", MAX_ITEMS)


def _f_urlize(a: dict[str, Any]) -> None:
    extra = len(str(a.get("target") or "")) + len(str(a.get("rel") or ""))
    check_size(len(str(a["value"])) * (3 + extra), "urlize")


def _f_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    if _is_int(indent):
        check_size(indent, "tojson indent", 64)


def _f_sum(a: dict[str, Any]) -> None:
    # Summing lists copies the running total each step: quadratic, inside C.
    if not isinstance(a.get("start", 0), int | float):
        raise BudgetExceeded("sum() of lists or strings is not allowed in templates")


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _f_center,
    "indent": _f_indent,
    "wordwrap": _f_wordwrap,
    "replace": _f_replace,
    "format": _f_format,
    "batch": _f_batch,
    "slice": _f_slice,
    "urlize": _f_urlize,
    "tojson": _f_tojson,
    "sum": _f_sum,
}


def _join_check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The join filter: materialise its input once so the separator's cost is known."""
    values = list(args)
    for i, v in enumerate(values):
        if not isinstance(v, str) and hasattr(v, "__iter__") and not isinstance(v, dict):
            items = list(v)
            check_size(len(items), "join", MAX_ITEMS)
            check_printable(items)
            sep = kwargs.get("d", values[i + 1] if len(values) > i + 1 else "")
            check_size(len(str(sep)) * max(len(items) - 1, 0), "join")
            values[i] = items
            break
    return tuple(values)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    signature = inspect.signature(func) if check else None

    def guarded(*args: Any, **kwargs: Any) -> Any:
        for v in (*args, *kwargs.values()):
            check_printable(v)
        if name == "join":
            args = _join_check(args, kwargs)
        if check is not None and signature is not None:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                pass  # the filter raises its own error for bad arguments
            else:
                check(bound.arguments)
        return func(*args, **kwargs)

    # Keep jinja's pass_context/pass_eval_context/pass_environment marks.
    guarded.__dict__.update(getattr(func, "__dict__", {}))
    guarded.__name__ = getattr(func, "__name__", name)
    return guarded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    check_size(n, "lipsum paragraphs", 100)
    check_size(max, "lipsum words", 1000)
    return generate_lorem_ipsum(n, html, min, max)


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja's compiler with two hooks: buffers that count, and a checked ``~``."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.metered_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # As jinja's own, but the join goes through the environment, which checks first.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.checked_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every way to ask for huge work bounded."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        # optimized=False: no constant folding at compile time.
        super().__init__(optimized=False, finalize=_printable, **options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.globals["lipsum"] = _lipsum

    @staticmethod
    def metered_buffer() -> list[Any]:
        return _MeteredBuffer()

    @staticmethod
    def checked_concat(join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        """``a ~ b``: refused when the joined text would pass the output budget."""
        for p in parts:
            check_printable(p)
        check_size(sum(len(p) for p in parts if isinstance(p, str)), "a concatenation")
        return join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_pow(left, right)
        elif operator == "*":
            _check_mul(left, right)
        elif operator == "+":
            _check_add(left, right)
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left)
            check_printable(right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _STR_METHODS:
            _check_str_method(name, owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_brace_format(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            for v in (*args, *kwargs.values()):
                check_printable(v)
            return wrapper(*args, **kwargs)

        return checked


def _printable(value: Any) -> Any:
    """Every ``{{ }}`` value passes here before it becomes text."""
    check_printable(value)
    return value
