import pytest
from hypothesis import given
from hypothesis import strategies as st

from steadymail.tracking.tokens import InvalidToken, Kind, TokenData, TokenSigner

SIGNER = TokenSigner({"k1": b"secret-one"}, "k1")

tokens = st.builds(
    TokenData,
    st.sampled_from(list(Kind)),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 500),
    st.text(max_size=300),
)


@given(tokens)
def test_round_trip(data: TokenData) -> None:
    token = SIGNER.sign(data)
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as it is
    assert SIGNER.verify(token) == data


@given(tokens, st.data())
def test_any_modification_is_rejected(data: TokenData, draw: st.DataObject) -> None:
    token = SIGNER.sign(data)
    i = draw.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    c = draw.draw(st.sampled_from(alphabet).filter(lambda ch: ch != token[i]))
    forged = token[:i] + c + token[i + 1 :]
    with pytest.raises(InvalidToken):
        SIGNER.verify(forged)


@given(tokens, st.integers(1, 20))
def test_truncated_tokens_are_rejected(data: TokenData, cut: int) -> None:
    token = SIGNER.sign(data)
    with pytest.raises(InvalidToken):
        SIGNER.verify(token[: max(0, len(token) - cut)])


def test_key_rotation_and_retirement() -> None:
    old = TokenSigner({"k1": b"secret-one"}, "k1")
    token = old.sign(TokenData(Kind.CLICK, 1, 2, 3, "https://example.com/"))
    rotated = TokenSigner({"k1": b"secret-one", "k2": b"secret-two"}, "k2")
    assert rotated.verify(token).url == "https://example.com/"  # links in inboxes keep working
    assert rotated.sign(TokenData(Kind.OPEN, 1, 2)).startswith("k2.")
    retired = TokenSigner({"k2": b"secret-two"}, "k2")
    with pytest.raises(InvalidToken):
        retired.verify(token)
    other = TokenSigner({"k1": b"another-secret"}, "k1")
    with pytest.raises(InvalidToken):
        other.verify(token)


def test_long_urls_are_compressed() -> None:
    url = "https://example.com/a/very/long/path?" + "&".join(f"utm_{i}=value{i}" for i in range(20))
    token = SIGNER.sign(TokenData(Kind.CLICK, 1, 2, 0, url))
    assert len(token) < len(url)
    assert SIGNER.verify(token).url == url


class Now:
    """A clock the test moves by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


T0 = 1_800_000_000.0


def test_tokens_from_before_expiry_existed_still_verify() -> None:
    # Made by the signer as it was before tokens could expire (same key).
    click = "k1.YwzZAgJodHRwczovL2V4YW1wbGUuY29tL29sZA.QNOh5AFdy6Sjrwlrj8SmcQ"
    unsub = "k1.dQzZAgA.EFdrLWulefaQ24jboEjIFw"
    strict = TokenSigner(
        {"k1": b"secret-one"}, "k1", {Kind.CLICK: 60, Kind.UNSUBSCRIBE: 60}, Now(T0 * 2)
    )
    assert strict.verify(click) == TokenData(Kind.CLICK, 12, 345, 2, "https://example.com/old")
    assert strict.verify(unsub) == TokenData(Kind.UNSUBSCRIBE, 12, 345)


def test_an_expired_token_is_rejected() -> None:
    now = Now(T0)
    signer = TokenSigner({"k1": b"secret-one"}, "k1", {Kind.CLICK: 3600.0}, now)
    click = signer.sign(TokenData(Kind.CLICK, 1, 2, 0, "https://example.com/"))
    unsub = signer.sign(TokenData(Kind.UNSUBSCRIBE, 1, 2))  # no lifetime given: for ever
    now.t = T0 + 3599
    assert signer.verify(click).url == "https://example.com/"
    now.t = T0 + 3600 + 60  # expiry is kept in whole minutes, rounded up
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(click)
    now.t = T0 * 3
    assert signer.verify(unsub).kind == Kind.UNSUBSCRIBE


@given(tokens, st.floats(1, 10 * 365 * 86400))
def test_expiring_tokens_round_trip_short_and_url_safe(data: TokenData, ttl: float) -> None:
    signer = TokenSigner({"k1": b"secret-one"}, "k1", dict.fromkeys(Kind, ttl), Now(T0))
    token = signer.sign(data)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert len(token) <= len(SIGNER.sign(data)) + 7
    assert signer.verify(token) == data
    # The expiry is in the token: a verifier with no lifetimes configured still enforces it.
    later = TokenSigner({"k1": b"secret-one"}, "k1", now=Now(T0 + ttl + 61))
    with pytest.raises(InvalidToken, match="expired"):
        later.verify(token)


def test_lifetimes_must_be_finite() -> None:
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError):
            TokenSigner({"k1": b"x"}, "k1", {Kind.OPEN: bad})


def test_unsubscribe_links_do_not_expire_by_default(tmp_path: object) -> None:
    from pathlib import Path

    from steadymail.config import Settings
    from steadymail.tracking.keys import token_ttl

    settings = Settings(data_dir=Path(str(tmp_path)))
    assert token_ttl(settings) == dict.fromkeys(Kind, 0.0)
