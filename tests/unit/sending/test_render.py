import pytest

from steadymail.errors import ValidationError
from steadymail.sending.render import (
    RenderError,
    check_variables,
    compile_template,
    contact_context,
    render,
)


def test_personalises_from_contact_attributes() -> None:
    t = compile_template("Hi {{ first_name }}", "<p>{{ contact.city }}</p>", "{{ email }}")
    out = render(t, contact_context("a@b.c", {"first_name": "Zoë", "city": "Oslo"}))
    assert (out.subject, out.html, out.text) == ("Hi Zoë", "<p>Oslo</p>", "a@b.c")


def test_html_part_is_autoescaped_text_part_is_not() -> None:
    t = compile_template("s", "<p>{{ name }}</p>", "{{ name }}")
    out = render(t, contact_context("a@b.c", {"name": "<b>&</b>"}))
    assert out.html == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>"
    assert out.text == "<b>&</b>"


def test_syntax_error_names_part_and_line() -> None:
    with pytest.raises(ValidationError, match=r"html part, line 2"):
        compile_template("s", "<p>ok</p>\n{% if x %}", "")


def test_undefined_variables_are_rejected_before_sending() -> None:
    t = compile_template("Hi {{ first_name }}", "{{ coupon }}", "")
    with pytest.raises(ValidationError, match="coupon"):
        check_variables(t, {"first_name"})
    check_variables(t, {"first_name", "coupon"})


def test_sandbox_blocks_python_internals() -> None:
    t = compile_template("s", "{{ email.__class__.__mro__[1].__subclasses__() }}", "")
    with pytest.raises(RenderError):
        render(t, contact_context("a@b.c", {}))


def test_missing_value_at_render_is_a_render_error() -> None:
    t = compile_template("Hi {{ first_name }}", "x", "")
    with pytest.raises(RenderError, match="first_name"):
        render(t, contact_context("a@b.c", {}))


def test_subject_cannot_gain_a_header_line_from_a_variable() -> None:
    t = compile_template("Hi {{ name }}", "x", "")
    with pytest.raises(RenderError, match="line break"):
        render(t, contact_context("a@b.c", {"name": "x\r\nBcc: victim@example.com"}))
    with pytest.raises(ValidationError, match="single line"):
        compile_template("Hi\nBcc: x", "x", "")


def test_a_template_of_text_and_plain_expressions_has_a_fixed_structure() -> None:
    from steadymail.sending.render import compile_template

    fixed = compile_template(
        "Hi", '<div><p>Hello {{ first_name | default("you") | title }}</p></div>', "x"
    )
    assert fixed.html_fixed_structure
    for html in (
        "{% for i in range(3) %}<div>{% endfor %}",
        "<div>{% if x %}</div>{% endif %}<div>",  # a skipped close tag nests what follows
        "{{ bio | safe }}",
        "{{ site | urlize }}",
        "{% macro m() %}<div>{% endmacro %}{{ m() }}",
    ):
        assert not compile_template("Hi", html, "x").html_fixed_structure, html
    # A fixed source nested too deep: refused once, when compiled, not in every message.
    with pytest.raises(ValidationError, match="600 elements deep"):
        compile_template("Hi", "<div>" * 600 + "x", "x")


def test_values_cannot_add_elements_to_a_fixed_template() -> None:
    from steadymail.sending.render import compile_template, render
    from steadymail.tracking.rewrite import html_depth

    t = compile_template("Hi", "<div>{{ bio }}</div>", "x")
    assert t.html_fixed_structure
    out = render(t, {"bio": "<div>" * 5000, "email": "a@example.com"}).html
    assert html_depth(out) == 1 and "&lt;div&gt;" in out
