"""Custom headers are checked when a request is accepted: names, control characters, reserved."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steadymail.domain.headers import (
    MAX_CUSTOM_HEADERS,
    BadHeader,
    check_custom_headers,
)


def test_ordinary_headers_pass() -> None:
    check_custom_headers({"X-Campaign": "spring", "Reply-To": "help@example.com", "X-Tab": "a\tb"})


@pytest.mark.parametrize(
    "name",
    ["Bcc", "cc", "Return-Path", "FROM", "Subject", "Message-ID", "Date", "MIME-Version",
     "Content-Type", "Content-Transfer-Encoding", "DKIM-Signature", "Received", "Sender"],
)  # fmt: skip
def test_reserved_headers_are_refused_by_name(name: str) -> None:
    with pytest.raises(BadHeader, match=name):
        check_custom_headers({name: "x"})


@pytest.mark.parametrize("name", ["X Bad", "X:Bad", "", "Ünicode", "X-\x00", "a" * 77])
def test_invalid_field_names_are_refused(name: str) -> None:
    with pytest.raises(BadHeader, match="not a valid field name"):
        check_custom_headers({name: "x"})


@pytest.mark.parametrize(
    "value", ["a\r\nBcc: x@example.com", "a\nb", "a\rb", "a\x00", "\x1b[0m", "\x7f"]
)
def test_control_characters_in_values_are_refused(value: str) -> None:
    with pytest.raises(BadHeader, match="X-Note"):
        check_custom_headers({"X-Note": value})


def test_a_second_list_unsubscribe_is_refused_only_when_the_platform_sets_one() -> None:
    mine = {"List-Unsubscribe": "<mailto:u@example.com>", "list-unsubscribe-post": "x"}
    check_custom_headers(mine)
    with pytest.raises(BadHeader, match="List-Unsubscribe"):
        check_custom_headers(mine, list_unsubscribe=True)


def test_the_same_name_twice_in_two_cases_is_refused() -> None:
    with pytest.raises(BadHeader, match="twice"):
        check_custom_headers({"X-A": "1", "x-a": "2"})


def test_counts_and_lengths_are_bounded() -> None:
    with pytest.raises(BadHeader, match=f"at most {MAX_CUSTOM_HEADERS}"):
        check_custom_headers({f"X-{i}": "v" for i in range(MAX_CUSTOM_HEADERS + 1)})
    with pytest.raises(BadHeader, match="longer"):
        check_custom_headers({"X-Long": "v" * 5000})


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=5))
def test_whatever_passes_cannot_start_a_header_line(headers: dict[str, str]) -> None:
    try:
        check_custom_headers(headers)
    except BadHeader:
        return
    for name, value in headers.items():
        assert not set("\r\n\x00:") & set(name) and "\r" not in value and "\n" not in value


def test_policy_headers_for_campaigns_and_transactional_mail() -> None:
    from steadymail.domain.headers import policy_headers

    assert policy_headers("campaign", 7, 3, "mail.example.net") == {
        "Auto-Submitted": "auto-generated",
        "Precedence": "bulk",
        "List-Id": "<list-3.mail.example.net>",
        "Feedback-ID": "7:3:campaign:mail.example.net",
    }
    # Transactional mail is not bulk and belongs to no list.
    assert policy_headers("stream", 9, None, "mail.example.net") == {
        "Auto-Submitted": "auto-generated",
        "Feedback-ID": "9:0:stream:mail.example.net",
    }
    # A header the caller set on its own message is the caller's, whatever its case.
    assert (
        policy_headers("stream", 9, None, "d.example", present=["auto-submitted", "FEEDBACK-id"])
        == {}
    )
