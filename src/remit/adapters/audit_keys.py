"""The audit checkpoint key: an Ed25519 (RFC 8032) key kept apart from credential keys, signing checkpoints.

Signatures are detached, base64url without padding (RFC 4648 §5), over the checkpoint's JCS bytes.
The private key file is PKCS#8 PEM, created 0600; a key file readable by group or others is refused,
since whoever can read it can forge checkpoints and hide a truncated log.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from remit.errors import InvalidRequest

__all__ = ["Ed25519CheckpointSigner", "Ed25519CheckpointVerifier"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "audit-" + hashlib.sha256(raw).hexdigest()[:16]


class Ed25519CheckpointVerifier:
    """Verifies checkpoint signatures with the audit public key (for verifying a log elsewhere)."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._public_key = public_key
        self._key_id = _key_id(public_key)

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> Ed25519CheckpointVerifier:
        return cls(Ed25519PublicKey.from_public_bytes(raw))

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, payload: bytes) -> str:  # noqa: ARG002 - the CheckpointSigner signature
        msg = "a verifier holds no private key"
        raise InvalidRequest(msg, field="audit.key")

    def verify(self, payload: bytes, signature: str) -> bool:
        try:
            self._public_key.verify(_unb64(signature), payload)
        except (InvalidSignature, ValueError):
            return False
        return True


class Ed25519CheckpointSigner(Ed25519CheckpointVerifier):
    """Signs checkpoints with the audit private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        super().__init__(private_key.public_key())
        self._private_key = private_key

    @classmethod
    def generate(cls) -> Ed25519CheckpointSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> Ed25519CheckpointSigner:
        """Load the key at `path`, or create it there (0600) when absent."""
        if not path.exists():
            signer = cls.generate()
            signer.save(path)
            return signer
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            msg = "the audit key file must not be readable by group or others (chmod 600)"
            raise InvalidRequest(msg, field="audit.key_file")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            msg = "the audit key file does not hold an Ed25519 private key"
            raise InvalidRequest(msg, field="audit.key_file")
        return cls(key)

    def save(self, path: Path) -> None:
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)

    def public_bytes(self) -> bytes:
        return self._public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, payload: bytes) -> str:
        return _b64(self._private_key.sign(payload))
