"""Console session cookies: signed, expiring, bound to a CSRF token; forgeries come back None."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steadymail.web.session import SESSION_SECONDS, SessionSigner

SIGNER = SessionSigner(b"k" * 32)


def test_a_cookie_names_its_key_until_it_expires() -> None:
    cookie = SIGNER.issue("abc123", 1000.0)
    session = SIGNER.verify(cookie, 1001.0)
    assert session is not None and session.who == "abc123"
    assert session.expires == 1000 + SESSION_SECONDS
    assert SIGNER.verify(cookie, 1000.0 + SESSION_SECONDS) is None


def test_another_key_or_any_changed_character_is_refused() -> None:
    cookie = SIGNER.issue("abc123", 1000.0)
    assert SessionSigner(b"x" * 32).verify(cookie, 1001.0) is None
    for i in range(len(cookie)):
        changed = cookie[:i] + ("0" if cookie[i] != "0" else "1") + cookie[i + 1 :]
        assert SIGNER.verify(changed, 1001.0) is None, i
    # A later expiry with the old signature: refused.
    parts = cookie.split(".")
    parts[2] = str(int(parts[2]) + 10_000)
    assert SIGNER.verify(".".join(parts), 1001.0) is None


def test_each_session_has_its_own_csrf_token() -> None:
    a = SIGNER.verify(SIGNER.issue("abc", 1.0), 2.0)
    b = SIGNER.verify(SIGNER.issue("abc", 1.0), 2.0)
    assert a is not None and b is not None and a.csrf != b.csrf
    assert SessionSigner.csrf_ok(a, a.csrf)
    assert not SessionSigner.csrf_ok(a, b.csrf)
    assert not SessionSigner.csrf_ok(a, None) and not SessionSigner.csrf_ok(a, "")


def test_a_prefix_that_could_break_the_format_is_refused() -> None:
    with pytest.raises(ValueError):
        SIGNER.issue("a.b", 1.0)
    with pytest.raises(ValueError):
        SessionSigner(b"short")


@given(st.text(max_size=300))
def test_any_text_as_a_cookie_is_none_or_a_session_never_an_error(text: str) -> None:
    assert SIGNER.verify(text, 1.0) is None


def test_non_ascii_cookies_and_tokens_are_refused_not_an_error() -> None:
    assert SIGNER.verify("v1.a.1.n.\u00e9", 1.0) is None
    session = SIGNER.verify(SIGNER.issue("abc", 1.0), 2.0)
    assert session is not None and not SessionSigner.csrf_ok(session, "\u00e9" * 32)


def test_each_key_names_its_own_cookie() -> None:
    # Consoles on one host, one port each, would otherwise overwrite each other's sessions.
    assert SIGNER.cookie != SessionSigner(b"x" * 32).cookie
    assert SIGNER.cookie.startswith("steadymail_session_")
