"""Templates: Jinja2 in a budgeted sandbox, checked before any send starts, strict when rendering.

Whatever a template does, rendering it ends in a result or a RenderError: never another
exception, never more output than MAX_OUTPUT per part (see sandbox.py for the budgets).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from steadymail.errors import ValidationError
from steadymail.sending.budget import MAX_OUTPUT, start_meter, stop_meter
from steadymail.sending.deadline import RENDER_SECONDS, DeadlinePassed, within
from steadymail.sending.sandbox import BudgetedSandbox
from steadymail.tracking.rewrite import check_html_depth

# Names every message can use whatever its list holds.
BUILTIN_VARIABLES = frozenset({"email", "contact", "send", "unsubscribe_url"})

_HTML = BudgetedSandbox(autoescape=True, undefined=StrictUndefined)
_PLAIN = BudgetedSandbox(autoescape=False, undefined=StrictUndefined)
# For dry renders without real recipients: an absent variable is empty, not an error.
_SAMPLE_HTML = BudgetedSandbox(autoescape=True, undefined=Undefined)
_SAMPLE_PLAIN = BudgetedSandbox(autoescape=False, undefined=Undefined)


class TemplateSourceError(ValidationError):
    """A template part that does not parse, naming the part and the line at fault."""

    def __init__(self, message: str, part: str, line: int | None) -> None:
        super().__init__(message)
        self.part = part
        self.line = line


class RenderError(ValidationError):
    """A template failed while rendering one message (e.g. a variable this contact lacks)."""


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:300]


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template
    variables: frozenset[str]
    # The HTML part's elements are its source's, whatever the values: text and autoescaped
    # expressions only (no loop, condition, macro or markup-making filter); such a source is
    # depth-checked once, here. Then no message can nest deeper and the per-message depth
    # check (0.29 ms on a 20 KB newsletter) is skipped.
    html_fixed_structure: bool = False


# Nodes that put out the template's own text or an autoescaped value, and the expressions
# that compute such values. Anything else (For, If, Macro, Call, blocks, …) may change which
# tags a message gets, so the message is depth-checked.
_FIXED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Const,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Filter,
    nodes.Test,
)
# Filters whose result autoescaping still escapes (none of them makes markup from a value).
_PLAIN_FILTERS = frozenset(
    {"default", "d", "upper", "lower", "title", "capitalize", "trim", "round", "int", "float"}
    | {"string", "e", "escape", "length", "count", "first", "last", "truncate", "replace"}
    | {"format", "abs", "wordcount", "urlencode"}
)


def _fixed_structure(tree: nodes.Template, source: str) -> bool:
    """Whether every message has the source's elements; a source of fixed structure nested
    too deep is refused here (each of its messages would be, one depth scan each)."""
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _FIXED_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in _PLAIN_FILTERS:
            return False
    check_html_depth(source)
    return True


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def compile_template(subject: str, html: str, text: str) -> CompiledTemplate:
    """Parse and compile all three parts; ValidationError names the part and line at fault."""
    _check_shape(subject, html, text)
    names: set[str] = set()
    compiled = []
    html_tree = None
    for part, source, env in (
        ("subject", subject, _PLAIN),
        ("html", html, _HTML),
        ("text", text, _PLAIN),
    ):
        try:
            # Parsed once: the tree gives the variables, the structure and the code.
            tree = env.parse(source)
            names |= meta.find_undeclared_variables(tree)
            if part == "html":
                html_tree = tree
            compiled.append(env.from_string(tree))
        except TemplateSyntaxError as e:
            raise TemplateSourceError(
                f"template {part} part, line {e.lineno}: {e.message}", part, e.lineno
            ) from e
        except Exception as e:
            # Deeply nested source (RecursionError), or anything else the compiler trips on.
            raise ValidationError(f"template {part} part does not compile: {_describe(e)}") from e
    fixed = html_tree is not None and _fixed_structure(html_tree, html)
    return CompiledTemplate(compiled[0], compiled[1], compiled[2], frozenset(names), fixed)


def _check_shape(subject: str, html: str, text: str) -> None:
    if not subject.strip():
        raise ValidationError("template subject is empty")
    if "\r" in subject or "\n" in subject:
        raise ValidationError("template subject must be a single line")
    if not html.strip() and not text.strip():
        raise ValidationError("template needs an HTML or a text part")


def check_template(
    subject: str, html: str, text: str, seconds: float = RENDER_SECONDS
) -> CompiledTemplate:
    """Compile, then dry-render with sample values, all within ``seconds``.

    Refuses what fails for every recipient (a type error, a budget, a deadline); a variable
    merely absent from the sample is not an error here."""

    def check() -> CompiledTemplate:
        compiled = compile_template(subject, html, text)
        sample = {
            "email": "sample@example.com",
            "contact": {"email": "sample@example.com"},
            "send": {"id": 0},
            "unsubscribe_url": "https://example.invalid/u/sample",
        }
        for part, source, env in (
            ("subject", subject, _SAMPLE_PLAIN),
            ("html", html, _SAMPLE_HTML),
            ("text", text, _SAMPLE_PLAIN),
        ):
            try:
                _render_part(env.from_string(source), sample, part)
            except RenderError as e:
                if _fails_for_everyone(e, bool(compiled.variables - BUILTIN_VARIABLES)):
                    raise ValidationError(f"template {part} part: {e}") from e
        return compiled

    try:
        return within(seconds, "compiling and rendering the template", check)
    except DeadlinePassed as e:
        raise ValidationError(f"template refused: {e}") from e


def _fails_for_everyone(error: RenderError, has_variables: bool) -> bool:
    """Whether a dry render's failure says the template can never render.

    Budgets, sandbox refusals and recursion do not depend on values. Other errors might come
    from a variable the sample lacks (``"%d" % price`` with no price), so they only count when
    the template uses no variables of its own."""
    cause = error.__cause__
    if isinstance(cause, UndefinedError):
        return False
    if cause is None or isinstance(cause, SecurityError | RecursionError):
        return True
    return not has_variables


def check_variables(template: CompiledTemplate, available: set[str]) -> None:
    """Reject a template that uses variables the recipients will not have."""
    missing = sorted(template.variables - available - BUILTIN_VARIABLES)
    if missing:
        raise ValidationError(
            "template uses undefined variable(s): "
            + ", ".join(missing)
            + f"; available: {', '.join(sorted(available | BUILTIN_VARIABLES))}"
        )


def _render_part(template: Template, context: dict[str, Any], part: str) -> str:
    """Stream one part, stopping as soon as it passes MAX_OUTPUT characters."""
    pieces: list[str] = []
    size = 0
    start_meter()
    try:
        stream: Iterator[str] = template.generate(context)
        for piece in stream:
            size += len(piece)
            if size > MAX_OUTPUT:
                raise RenderError(f"{part} part is longer than {MAX_OUTPUT} characters")
            pieces.append(piece)
    except RenderError:
        raise
    except Exception as e:
        # Any failure inside a template is that template's: a TypeError, a recursion, a
        # sandbox refusal. (A deadline's stop is a BaseException and goes through.)
        raise RenderError(f"render failed in the {part} part: {_describe(e)}") from e
    finally:
        stop_meter()
    return "".join(pieces)


def render(template: CompiledTemplate, context: dict[str, Any]) -> Rendered:
    """Render one message; any failure of the template is a RenderError."""
    subject = _render_part(template.subject, context, "subject").strip()
    html = _render_part(template.html, context, "html")
    text = _render_part(template.text, context, "text")
    if "\r" in subject or "\n" in subject or "\x00" in subject:
        # A variable's value tried to start a new header line.
        raise RenderError("rendered subject contains a line break")
    return Rendered(subject, html, text)


def render_within(
    template: CompiledTemplate, context: dict[str, Any], seconds: float = RENDER_SECONDS
) -> Rendered:
    """``render`` with a wall-clock deadline: past it, a RenderError."""
    try:
        return within(seconds, "rendering", lambda: render(template, context))
    except DeadlinePassed as e:
        raise RenderError(str(e)) from e


def contact_context(
    email: str, attributes: dict[str, Any] | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables a template sees for one recipient."""
    attrs = dict(attributes or {})
    ctx: dict[str, Any] = {**attrs, "email": email, "contact": {**attrs, "email": email}}
    if extra:
        ctx.update(extra)
    return ctx
