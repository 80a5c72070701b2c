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
