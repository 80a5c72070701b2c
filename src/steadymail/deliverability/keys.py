"""New DKIM keys for a sending domain: RSA-2048 and Ed25519 (RFC 8463), private keys 0600."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from steadymail.deliverability.records import Algorithm

RSA_BITS = 2048


def generate(algorithm: Algorithm, path: Path) -> str:
    """Write a new private key to ``path`` (PEM, PKCS#8, mode 0600, never overwriting one) and
    return the public key as the DNS record's ``p=`` value."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm is Algorithm.RSA:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        # RFC 8463 3.2: the record holds the bare 32-byte key, not a SubjectPublicKeyInfo.
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: a key that exists is never replaced (mail signed with it may still be checked).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return base64.b64encode(public).decode("ascii")
