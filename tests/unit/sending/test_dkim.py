import base64
from pathlib import Path

import dkim
import nacl.signing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steadymail.config import DkimSettings
from steadymail.sending.dkim_signer import DkimSigner
from steadymail.sending.mime import Envelope, build_message


def message() -> bytes:
    return build_message(
        Envelope(
            from_addr="Ünï <news@example.com>",
            to_addr="zoe@example.org",
            subject="Grüße",
            html="<p>hi</p>",
            text="hi",
            message_id="<sm.1.1.a@example.com>",
            date=1.7e9,
        )
    )


def rsa_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)


def ed25519_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = nacl.signing.SigningKey.generate()
    path = tmp_path / "ed.key"
    path.write_bytes(base64.b64encode(bytes(key)))
    return path, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key))


@pytest.mark.parametrize(
    ("algorithm", "make"), [("rsa-sha256", rsa_key), ("ed25519-sha256", ed25519_key)]
)
def test_signature_verifies_with_dkimpy(tmp_path: Path, algorithm: str, make: object) -> None:
    path, record = make(tmp_path)  # type: ignore[operator]
    signer = DkimSigner(
        [DkimSettings(domain="example.com", selector="s1", key_file=path, algorithm=algorithm)]
    )  # type: ignore[arg-type]
    signed = signer.sign(message(), "example.com")
    assert signed.startswith(b"DKIM-Signature:")
    assert algorithm.encode() in signed.split(b"\r\n\r\n")[0]

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.com."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    tampered = signed.replace(b"hi\r\n", b"ho\r\n", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_other_domains_pass_unsigned(tmp_path: Path) -> None:
    path, _ = rsa_key(tmp_path)
    signer = DkimSigner([DkimSettings(domain="other.org", selector="s1", key_file=path)])
    original = message()
    assert signer.sign(original, "example.com") == original


def _dns(record: bytes) -> object:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.com."
        return record

    return dns


@pytest.mark.parametrize(
    ("algorithm", "make"), [("rsa-sha256", rsa_key), ("ed25519-sha256", ed25519_key)]
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(st.text(alphabet=" \t.ab<>=é", max_size=30), max_size=8),
    subject=st.text(alphabet=" \tabcé", min_size=1, max_size=40),
    trailing_blank_lines=st.integers(0, 3),
)
def test_any_whitespace_in_headers_and_body_verifies_with_dkimpy(
    tmp_path: Path,
    algorithm: str,
    make: object,
    body: list[str],
    subject: str,
    trailing_blank_lines: int,
) -> None:
    """Our canonicalisation against dkimpy's: folded and padded headers, runs of spaces and
    tabs, trailing whitespace, blank lines at the end, an empty body."""
    path, record = make(tmp_path)  # type: ignore[operator]
    signer = DkimSigner(
        [DkimSettings(domain="example.com", selector="s1", key_file=path, algorithm=algorithm)]
    )  # type: ignore[arg-type]
    raw_subject = subject.strip(" \t") or "x"
    head = (
        "From:  News   <news@example.com> \r\n"
        f"Subject: {raw_subject}\r\n\t folded  part \r\n"
        "To: zoe@example.org\r\n"
        "List-Unsubscribe: <https://example.com/u/1>\r\n"
        "X-Not-Signed: \t whatever\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
    ).encode()
    text = "\r\n".join(body) + "\r\n" * trailing_blank_lines
    signed = signer.sign(head + b"\r\n" + text.encode(), "example.com")
    assert dkim.verify(signed, dnsfunc=_dns(record))  # type: ignore[arg-type]
