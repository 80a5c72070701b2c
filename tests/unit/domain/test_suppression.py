"""The suppression key and which streams block which messages."""

from hypothesis import given
from hypothesis import strategies as st

from steadymail.domain.suppression import Stream, blocks, stream_for, suppression_key


def test_key_is_the_bare_case_folded_address() -> None:
    for spelling in (
        '"Ann" <Ann@Example.COM>',
        "Ann Example <ann@example.com>",
        "ANN@EXAMPLE.COM",
        "  ann@example.com ",
        "<ann@Example.com>",
    ):
        assert suppression_key(spelling) == "ann@example.com", spelling
    assert suppression_key("Straße@example.com") == suppression_key("STRASSE@example.com")
    assert suppression_key("a@Bücher.example") == suppression_key("A@xn--bcher-kva.example")


@given(st.from_regex(r"[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,20}\.[A-Za-z]{2,6}", fullmatch=True))
def test_key_ignores_display_name_and_case(addr: str) -> None:
    key = suppression_key(addr)
    assert suppression_key(f'"Some One" <{addr.upper()}>') == key
    assert suppression_key(key) == key


def test_streams() -> None:
    assert stream_for("unsubscribed") == Stream.MARKETING
    assert stream_for("hard_bounce") == Stream.ALL and stream_for("complaint") == Stream.ALL
    assert blocks(Stream.MARKETING, marketing=True)
    assert not blocks(Stream.MARKETING, marketing=False)  # a password reset still goes out
    assert blocks(Stream.ALL, marketing=False) and blocks(Stream.ALL, marketing=True)


def test_a_complaint_or_unsubscribe_suppresses_the_stream_it_came_from_a_bounce_both() -> None:
    assert stream_for("complaint", marketing=True) == Stream.MARKETING
    assert stream_for("complaint", marketing=False) == Stream.TRANSACTIONAL
    assert stream_for("unsubscribed", marketing=True) == Stream.MARKETING
    assert stream_for("hard_bounce", marketing=True) == Stream.ALL
    assert stream_for("soft_bounce", marketing=False) == Stream.ALL
    # A transactional suppression stops receipts, not newsletters.
    assert blocks(Stream.TRANSACTIONAL, marketing=False)
    assert not blocks(Stream.TRANSACTIONAL, marketing=True)
