import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steadymail.errors import ValidationError
from steadymail.sending.mime import Envelope, boundary_for, build_message, message_id_for


def envelope(**kw: object) -> Envelope:
    base: dict[str, object] = dict(
        from_addr="Équipe Ünïcode <news@example.com>",
        to_addr="Zoë Ångström <zoe@example.com>",
        subject="Grüße aus Köln — 🚀 launch",
        html="<p>Привет, 世界</p>",
        text="Привет, 世界",
        message_id="<sm.1.2.abc@example.com>",
        date=1_700_000_000.0,
    )
    base.update(kw)
    return Envelope(**base)  # type: ignore[arg-type]


def parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_unicode_everywhere_round_trips_in_7bit_headers() -> None:
    data = build_message(envelope())
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # encoded words, not raw UTF-8, in headers
    msg = parse(data)
    assert msg["Subject"] == "Grüße aus Köln — 🚀 launch"
    assert msg["To"].addresses[0].display_name == "Zoë Ångström"
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert parts["text/plain"].strip() == "Привет, 世界"
    assert parts["text/html"].strip() == "<p>Привет, 世界</p>"
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_idn_domain_becomes_punycode() -> None:
    msg = parse(build_message(envelope(to_addr="kunde@bücher.de")))
    assert msg["To"].addresses[0].domain == "xn--bcher-kva.de"


@pytest.mark.parametrize("field", ["subject", "to_addr", "from_addr"])
@pytest.mark.parametrize("evil", ["\r\nBcc: victim@example.com", "\nX-Evil: 1", "\rX: y"])
def test_header_injection_is_rejected(field: str, evil: str) -> None:
    value = {"subject": "Hello", "to_addr": "a@example.com", "from_addr": "b@example.com"}[field]
    with pytest.raises(ValidationError):
        build_message(envelope(**{field: value + evil}))


def test_extra_headers_are_checked_too() -> None:
    with pytest.raises(ValidationError):
        build_message(envelope(headers={"X-Tag": "a\r\nBcc: x@example.com"}))


_LINE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200
).filter(lambda s: s.strip())


@given(_LINE)
def test_any_single_line_subject_round_trips(subject: str) -> None:
    msg = parse(build_message(envelope(subject=subject)))
    assert " ".join(str(msg["Subject"]).split()) == " ".join(subject.split())


@given(_LINE, _LINE, st.sampled_from(["\r", "\n", "\r\n"]))
def test_any_line_break_in_a_subject_is_refused(head: str, tail: str, brk: str) -> None:
    with pytest.raises(ValidationError):
        build_message(envelope(subject=head + brk + tail))


def test_message_id_is_deterministic_per_send_and_recipient() -> None:
    a = message_id_for(7, 42, "Zoe@Example.com", "mail.example.com")
    assert a == message_id_for(7, 42, "zoe@example.com", "mail.example.com")
    assert a != message_id_for(8, 42, "zoe@example.com", "mail.example.com")
    assert a.startswith("<sm.7.42.") and a.endswith("@mail.example.com>")


def test_single_part_messages_and_long_lines() -> None:
    long_line = "word " * 400
    html_only = parse(build_message(envelope(text="", html=f"<p>{long_line}</p>")))
    assert html_only.get_content_type() == "text/html"
    assert html_only.get_content().strip() == f"<p>{long_line}</p>".strip()
    assert html_only["Content-Transfer-Encoding"] == "quoted-printable"  # line too long for 7bit
    text_only = parse(build_message(envelope(html="", text="a\r\n.\r\nb=c")))
    assert text_only.get_content_type() == "text/plain"
    assert text_only.get_content().splitlines() == ["a", ".", "b=c"]
    assert text_only["Content-Transfer-Encoding"] == "7bit"
    assert all(
        len(line) <= 998 for line in build_message(envelope(subject="x" * 2000)).split(b"\r\n")
    )


def test_extra_headers_are_encoded_and_reserved_ones_refused() -> None:
    msg = parse(build_message(envelope(headers={"X-Campaign": "Été 2026"})))
    assert msg["X-Campaign"] == "Été 2026"
    for name in ("Bcc", "content-type", "X Bad", "X:Bad"):
        with pytest.raises(ValidationError):
            build_message(envelope(headers={name: "v"}))


def test_utf8_local_part_uses_smtputf8_headers() -> None:
    data = build_message(envelope(to_addr="Zoë <zoë@example.com>"))
    assert "zoë@example.com".encode() in data.split(b"\r\n\r\n")[0]


def test_boundaries_are_random_and_never_inside_a_body() -> None:
    a, b = (parse(build_message(envelope())).get_boundary() for _ in range(2))
    assert a and b and a != b  # the same message twice: two unguessable boundaries
    # A body that holds the first boundary drawn: it is drawn again.
    draws = iter(["0" * 32, "1" * 32])
    body = b"--=_sm_" + b"0" * 32 + b"\r\n"
    assert boundary_for(body, b"", new=lambda: next(draws)) == "=_sm_" + "1" * 32


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1),
    st.text(min_size=1),
)
def test_a_body_quoting_our_boundary_prefix_still_splits_right(text: str, extra: str) -> None:
    text = f"--=_sm_{extra}\n{text}\n--=_sm_--"
    msg = parse(build_message(envelope(text=text, html="<p>x</p>")))
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    boundary = msg.get_boundary()
    assert boundary and boundary.encode() not in text.encode()
