"""The template sandbox, with budgets: no template can make one render take unbounded work.

Jinja's own sandbox stops templates reaching Python internals, not templates that ask for a
googol of work. This one also:

- never folds constants at compile time (``9**(9**9)`` would run while *compiling*);
- refuses, before they run, the operations whose result could be huge: big powers and
  products of integers, repeating or concatenating strings and lists past a size, padding and
  indenting widths, ``replace``/``join``/``translate`` results, format widths (budget.py);
- refuses to stringify containers that would expand past the output budget (shared
  references make ``str([a, a])`` exponential in the nesting);
- counts every piece of text the template buffers (macros, ``{% set %}`` blocks), so the
  text one render builds is bounded, not only what it finally returns.

Time is bounded elsewhere (``deadline.py``): loops and recursion are cheap to write.
"""

import inspect
from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from steadymail.sending.budget import (
    MAX_ITEMS,
    STR_METHODS,
    BudgetExceeded,
    MeteredBuffer,
    check_add,
    check_brace_format,
    check_brace_result,
    check_mul,
    check_percent_format,
    check_pow,
    check_printable,
    check_replace,
    check_size,
    check_str_method,
    count_lines,
    is_int,
)

# --- filters: each check gets the filter's own arguments, by name ----------------------------


def _f_center(a: dict[str, Any]) -> None:
    width = a.get("width", 80)
    if is_int(width):
        check_size(width, "center")


def _f_indent(a: dict[str, Any]) -> None:
    s, width = str(a["s"]), a.get("width", 4)
    w = len(width) if isinstance(width, str) else width if is_int(width) else 0
    check_size(len(s) + count_lines(s) * w, "indent")


def _f_wordwrap(a: dict[str, Any]) -> None:
    s, wrap = str(a["s"]), a.get("wrapstring") or "\n"
    check_size(len(s) * (1 + len(str(wrap))), "wordwrap")


def _f_replace(a: dict[str, Any]) -> None:
    count = a.get("count")
    check_replace(str(a["s"]), str(a["old"]), str(a["new"]), count if is_int(count) else None)


def _f_format(a: dict[str, Any]) -> None:
    check_percent_format(str(a["value"]), a.get("kwargs") or a.get("args", ()))


def _f_batch(a: dict[str, Any]) -> None:
    check_size(a["linecount"], "batch", MAX_ITEMS)


def _f_slice(a: dict[str, Any]) -> None:
    check_size(a["slices"], "slice", MAX_ITEMS)


def _f_urlize(a: dict[str, Any]) -> None:
    extra = len(str(a.get("target") or "")) + len(str(a.get("rel") or ""))
    check_size(len(str(a["value"])) * (3 + extra), "urlize")


def _f_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    if is_int(indent):
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
        return MeteredBuffer()

    @staticmethod
    def checked_concat(join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        """``a ~ b``: refused when the joined text would pass the output budget."""
        for p in parts:
            check_printable(p)
        check_size(sum(len(p) for p in parts if isinstance(p, str)), "a concatenation")
        return join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            check_pow(left, right)
        elif operator == "*":
            check_mul(left, right)
        elif operator == "+":
            check_add(left, right)
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in STR_METHODS:
            check_str_method(name, owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        fields = check_brace_format(fmt)

        def checked(*args: Any, **kwargs: Any) -> str:
            values = [*args, *kwargs.values()]
            if value.__name__ == "format_map" and args and isinstance(args[0], dict):
                values = list(args[0].values())
            check_brace_result(fmt, fields, values)
            return wrapper(*args, **kwargs)

        return checked


def _printable(value: Any) -> Any:
    """Every ``{{ }}`` value passes here before it becomes text."""
    check_printable(value)
    return value
