"""Templates: Jinja2 in its sandbox, checked before any send starts, strict when rendering."""

from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from steadymail.errors import ValidationError

# Names every message can use whatever its list holds.
BUILTIN_VARIABLES = frozenset({"email", "contact", "send", "unsubscribe_url"})

_HTML = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_PLAIN = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


class RenderError(ValidationError):
    """A template failed while rendering one message (e.g. a variable this contact lacks)."""


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template
    variables: frozenset[str]


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def compile_template(subject: str, html: str, text: str) -> CompiledTemplate:
    """Parse and compile all three parts; ValidationError names the part and line at fault."""
    if not subject.strip():
        raise ValidationError("template subject is empty")
    if "\r" in subject or "\n" in subject:
        raise ValidationError("template subject must be a single line")
    if not html.strip() and not text.strip():
        raise ValidationError("template needs an HTML or a text part")
    names: set[str] = set()
    compiled = []
    for part, source, env in (
        ("subject", subject, _PLAIN),
        ("html", html, _HTML),
        ("text", text, _PLAIN),
    ):
        try:
            names |= meta.find_undeclared_variables(env.parse(source))
            compiled.append(env.from_string(source))
        except TemplateSyntaxError as e:
            raise ValidationError(f"template {part} part, line {e.lineno}: {e.message}") from e
    return CompiledTemplate(compiled[0], compiled[1], compiled[2], frozenset(names))


def check_variables(template: CompiledTemplate, available: set[str]) -> None:
    """Reject a template that uses variables the recipients will not have."""
    missing = sorted(template.variables - available - BUILTIN_VARIABLES)
    if missing:
        raise ValidationError(
            "template uses undefined variable(s): "
            + ", ".join(missing)
            + f"; available: {', '.join(sorted(available | BUILTIN_VARIABLES))}"
        )


def render(template: CompiledTemplate, context: dict[str, Any]) -> Rendered:
    """Render one message; a missing variable or a sandbox violation is a RenderError."""
    try:
        subject = template.subject.render(context).strip()
        html, text = template.html.render(context), template.text.render(context)
    except (UndefinedError, SecurityError) as e:
        raise RenderError(f"render failed: {e}") from e
    if "\r" in subject or "\n" in subject or "\x00" in subject:
        # A variable's value tried to start a new header line.
        raise RenderError("rendered subject contains a line break")
    return Rendered(subject, html, text)


def contact_context(
    email: str, attributes: dict[str, Any] | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables a template sees for one recipient."""
    attrs = dict(attributes or {})
    ctx: dict[str, Any] = {**attrs, "email": email, "contact": {**attrs, "email": email}}
    if extra:
        ctx.update(extra)
    return ctx
