"""The budgeted sandbox: hostile templates refused or stopped, ordinary ones unchanged."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from steadymail.errors import ValidationError
from steadymail.sending.render import (
    RenderError,
    check_template,
    compile_template,
    contact_context,
    render,
    render_within,
)

# A list nested 60 deep, each level holding the one below twice.
SHARED = "{% set ns = namespace(a=[1, 1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}"
SHARED += "{% endfor %}"
CTX = contact_context("a@example.com", {"first_name": "Ada", "items": "x,y"})


def finishes(fn: Callable[[], Any], bound: float = 60.0) -> Any:
    """Run fn in a thread; fail the test if it has not finished within ``bound`` seconds.

    A behaviour check, not a timing one: without the budgets these renders run for hours."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(bound)
    assert not t.is_alive(), "render did not stop"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def html_render(source: str, seconds: float = 2.0) -> str:
    return finishes(lambda: render_within(compile_template("s", source, ""), CTX, seconds)).html


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ first_name + 1 }}", "TypeError"),
        ("{{ 9**(9**9) }}", "power past"),
        ('{{ "a"*10**8 }}', "repetition"),
        ("{{ range(10**9)|list }}", "Range too big"),
        ('{{ "x".ljust(10**9) }}', "str.ljust"),
        ('{{ ("a"*100000)|replace("a","b"*100000) }}', "replace"),
        ('{{ "a"|center(10**9) }}', "center"),
        ('{{ "a\nb"|indent(10**9) }}', "indent"),
        ('{{ "x".zfill(10**9) }}', "zfill"),
        ('{{ "a\tb".expandtabs(10**9) }}', "expandtabs"),
        ('{{ "{:>1000000000}".format(1) }}', "format width"),
        ('{{ "{:{}}".format(1, 10**9) }}', "nested format"),
        ('{{ "%1000000000d" % 1 }}', "format width"),
        ('{{ "%*d" % (10**9, 1) }}', "'\\*' widths"),
        ('{{ "%999999999s"|format(1) }}', "format width"),
        ('{{ ("{0}" * 100).format("a" * 100000) }}', "formatted string"),
        ('{{ ("{a}" * 100).format_map({"a": "b" * 100000}) }}', "formatted string"),
        ('{{ ("%(a)s" * 100) % {"a": "b" * 100000} }}', "formatted string"),
        ('{{ ("%(a)s" * 100)|format(a="b" * 100000) }}', "formatted string"),
        ('{{ range(100000)|join("x" * 1000) }}', "join"),
        ("{{ lipsum(10**6) }}", "lipsum"),
        ("{{ range(10)|batch(10**9, 0)|list }}", "batch"),
        ("{{ range(100000)|batch(1)|sum(start=[]) }}", "sum"),
        (
            "{% set ns = namespace(x=7) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
            "{% endfor %}{{ ns.x }}",
            "integer product",
        ),
        (
            '{% set ns = namespace(s="ab") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}'
            "{% endfor %}{{ ns.s|length }}",
            "concatenation",
        ),
        (
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}"
            "{% endfor %}{{ ns.l|length }}",
            "concatenation",
        ),
        # Shared references: tiny in memory, exponential once printed.
        (
            SHARED + "{{ ns.a|upper }}",
            "cannot be printed",
        ),
        (
            SHARED + "{{ ns.a }}",
            "cannot be printed",
        ),
        # Buffered text (macros, set blocks) is metered, not only what the part returns.
        (
            '{% set x = "a" * 1000000 %}{% macro d(s, n) %}{% if n %}{{ d(s, n - 1) }}'
            "{{ d(s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d(x, 40)|length }}",
            "builds more than",
        ),
        (
            '{% set x %}{% for i in range(100000) %}{{ "a" * 100000 }}{% endfor %}{% endset %}'
            "{{ x|length }}",
            "builds more than",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "longer than 1000000 characters",
        ),
        ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "RecursionError"),
        ("{% set l = [] %}{% for i in range(30) %}{{ l.extend(l) }}{% endfor %}", "unsafe"),
    ],
)
def test_hostile_templates_are_refused(source: str, reason: str) -> None:
    with pytest.raises(RenderError, match=reason):
        html_render(source)


def test_busy_loops_are_stopped_by_the_deadline() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"
    with pytest.raises(RenderError, match=r"more than 0\.3s of CPU time"):
        html_render(source, seconds=0.3)


def test_the_deadline_stops_a_template_during_creation() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(ValidationError, match=r"more than 0\.3s of CPU time"):
        finishes(lambda: check_template("s", source, "", seconds=0.3))


def test_nothing_is_folded_at_compile_time() -> None:
    # Jinja's optimiser would compute this while compiling, outside any render budget.
    compiled = finishes(lambda: compile_template("s", "{{ 9**(9**9) }}{{ 'a'|center(10**9) }}", ""))
    with pytest.raises(RenderError):
        render(compiled, CTX)


ORDINARY = [
    "Hello {{ first_name }}, {{ email|upper }}",
    "{% for i in items.split(',') %}<li>{{ loop.index }}: {{ i|title }}</li>{% endfor %}",
    "{{ '%05.2f'|format(3.14159) }} {{ '{:>6}'.format('ab') }} {{ 'ab'|center(9) }}",
    "{{ 'a\nb'|indent(2, first=True) }} {{ 'a b c d'|wordwrap(3) }} {{ 'x'.ljust(4) }}|",
    "{{ [3, 1, 2]|sort|join(', ') }} {{ range(5)|sum }} {{ range(7)|batch(3)|list }}",
    "{% macro b(x) %}<b>{{ x }}</b>{% endmacro %}{{ b(first_name) }}{{ b('<&>') }}",
    "{% set greeting %}Hi {{ first_name }}{% endset %}{{ greeting ~ '!' * 3 }} {{ 2**10 }}",
    "{{ contact|dictsort }} {{ 'a-b'.replace('-', '+') }} {{ {'k': [1, 2]}|tojson }}",
    "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}"
    "{{ ns.n }} {{ 'see http://example.com'|urlize }} {{ 'x' ~ 1 ~ [1] }}",
]


@pytest.mark.parametrize("source", ORDINARY)
def test_ordinary_templates_render_as_with_plain_jinja(source: str) -> None:
    for autoescape in (True, False):
        plain = SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined)
        expected = plain.from_string(source).render(CTX)
        compiled = compile_template("s", source if autoescape else "x", source)
        out = render(compiled, CTX)
        assert (out.html if autoescape else out.text) == expected


def test_template_creation_dry_render() -> None:
    # An absent variable is not a reason to refuse: the list may have it.
    assert check_template("s", "{{ first_name + 1 }}", "").variables == {"first_name"}
    with pytest.raises(ValidationError, match="TypeError"):
        check_template("s", "{{ 1 + 'a' }}", "")
    with pytest.raises(ValidationError, match="power past"):
        check_template("Hi", "", "{{ 9**(9**9) }}")
    # A failure that may come from an absent variable is left to the real values to decide.
    check_template("s", "{{ '%d'|format(price) }}", "")
    with pytest.raises(ValidationError, match="RecursionError"):
        check_template("s", "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(price) }}", "")


def test_deeply_nested_source_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        nested = "{{ " + "(" * 100000 + "1" + ")" * 100000 + " }}"
        finishes(lambda: compile_template("s", nested, ""))
