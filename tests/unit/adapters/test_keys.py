"""The signing key ring: creation, round trip, rotation with overlap, pruning, encryption at rest, KEK files."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import stat

from pathlib import Path

import pytest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from remit.adapters.keys import (
    KEY_FILE_NAME,
    KeyRing,
    KeyState,
    SigningAlgorithm,
    generate_kek_file,
    jwk_thumbprint,
    parse_kek,
    read_kek_file,
)
from remit.errors import InvalidRequest, Unavailable
from remit.testing import FrozenClock

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(tmp_path: Path, kek: bytes, clock: FrozenClock) -> KeyRing:
    return KeyRing.open(tmp_path / "keys", kek, now=clock.now())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_ring_has_one_active_and_one_next_es256_key(ring: KeyRing) -> None:
    """Opening an empty directory creates an active and a next key, ES256 by default, kid = RFC 7638 thumbprint."""
    states = [k.state for k in ring.published()]
    assert states == [KeyState.ACTIVE, KeyState.NEXT]
    active = ring.active()
    assert active.algorithm is SigningAlgorithm.ES256
    assert active.kid == jwk_thumbprint(active.public_jwk)
    assert active.public_jwk["crv"] == "P-256"
    assert ring.next_key().kid != active.kid


def test_key_file_is_private_and_written_atomically(ring: KeyRing) -> None:
    """The key file is mode 0600 in a 0700 directory and no temporary file is left behind."""
    assert _mode(ring.path) == 0o600
    assert _mode(ring.path.parent) == 0o700
    assert [p.name for p in ring.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_private_keys_are_not_stored_in_clear(ring: KeyRing) -> None:
    """The file holds the private key only sealed: its PKCS#8 bytes appear neither raw nor base64-encoded."""
    der = ring.active().private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    content = ring.path.read_bytes()
    assert der not in content
    assert base64.urlsafe_b64encode(der).rstrip(b"=") not in content
    assert base64.b64encode(der) not in content
    assert "private_key" not in repr(ring.active())


def test_reopening_with_the_same_kek_round_trips_every_key(tmp_path: Path, kek: bytes, clock: FrozenClock) -> None:
    """A ring reopened from disk has the same keys, states and usable private keys."""
    first = KeyRing.open(tmp_path, kek, now=clock.now())
    first.rotate(clock.now())
    second = KeyRing.open(tmp_path, kek, now=clock.now())
    assert second.published() == first.published()
    reopened, original = second.active().private_key, first.active().private_key
    assert isinstance(reopened, ec.EllipticCurvePrivateKey)
    assert isinstance(original, ec.EllipticCurvePrivateKey)
    signature = reopened.sign(b"round trip", ec.ECDSA(hashes.SHA256()))
    original.public_key().verify(signature, b"round trip", ec.ECDSA(hashes.SHA256()))


def test_rotation_promotes_next_and_retires_active(ring: KeyRing, clock: FrozenClock) -> None:
    """rotate(): next becomes active, active becomes retired (still published), and a new next appears."""
    old_active, old_next = ring.active(), ring.next_key()
    clock.advance(HOUR)
    new_active = ring.rotate(clock.now())
    assert new_active.kid == old_next.kid
    assert new_active.activated_at == clock.now()
    retired = ring.get(old_active.kid)
    assert retired is not None
    assert retired.state is KeyState.RETIRED
    assert retired.retired_at == clock.now()
    assert ring.next_key().kid not in {old_active.kid, old_next.kid}
    assert len(ring.published()) == 3


def test_prune_keeps_retired_keys_until_their_tokens_expired(ring: KeyRing, clock: FrozenClock) -> None:
    """A retired key stays until max_token_lifetime has passed since retirement, then prune drops it."""
    old = ring.active()
    ring.rotate(clock.now())
    clock.advance(dt.timedelta(minutes=59))
    assert ring.prune(clock.now(), max_token_lifetime=HOUR) == ()
    assert ring.get(old.kid) is not None
    clock.advance(dt.timedelta(minutes=1))
    assert ring.prune(clock.now(), max_token_lifetime=HOUR) == (old.kid,)
    assert ring.get(old.kid) is None
    assert [k.state for k in ring.published()] == [KeyState.ACTIVE, KeyState.NEXT]


def test_eddsa_is_configurable_and_applies_to_new_keys(tmp_path: Path, kek: bytes, clock: FrozenClock) -> None:
    """With EdDSA configured, new keys are Ed25519 OKP keys; existing ES256 keys keep their algorithm."""
    KeyRing.open(tmp_path, kek, now=clock.now())
    ring = KeyRing.open(tmp_path, kek, now=clock.now(), algorithm=SigningAlgorithm.EDDSA)
    assert ring.active().algorithm is SigningAlgorithm.ES256
    ring.rotate(clock.now())
    ring.rotate(clock.now())
    assert ring.active().algorithm is SigningAlgorithm.EDDSA
    assert ring.active().public_jwk == {"kty": "OKP", "crv": "Ed25519", "x": ring.active().public_jwk["x"]}


def test_wrong_kek_is_a_clear_unavailable(tmp_path: Path, kek: bytes, clock: FrozenClock) -> None:
    """A different KEK fails with Unavailable(reason=wrong_kek) and a message that mentions re-keying."""
    KeyRing.open(tmp_path, kek, now=clock.now())
    with pytest.raises(Unavailable) as caught:
        KeyRing.open(tmp_path, secrets.token_bytes(32), now=clock.now())
    assert caught.value.details == {"reason": "wrong_kek"}
    assert "re-keyed" in caught.value.message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_swapped_key_id_fails_authentication(tmp_path: Path, kek: bytes, clock: FrozenClock) -> None:
    """The key id is the AEAD's associated data: moving a sealed key under another kid does not decrypt."""
    ring = KeyRing.open(tmp_path, kek, now=clock.now())
    document = json.loads(ring.path.read_text())
    first, second = document["keys"]
    first["ciphertext"], second["ciphertext"] = second["ciphertext"], first["ciphertext"]
    first["nonce"], second["nonce"] = second["nonce"], first["nonce"]
    ring.path.write_text(json.dumps(document))
    with pytest.raises(Unavailable) as caught:
        KeyRing.open(tmp_path, kek, now=clock.now())
    assert caught.value.details["reason"] == "wrong_kek"


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'{"schema": 99, "keys": []}', b'{"schema": 1}', b'{"schema": 1, "keys": [{"kid": 1}]}'],
)
def test_a_corrupt_key_file_is_a_clear_unavailable(
    tmp_path: Path, kek: bytes, clock: FrozenClock, content: bytes
) -> None:
    """Garbage, wrong schema or malformed entries fail with Unavailable(reason=corrupt_key_file)."""
    path = tmp_path / KEY_FILE_NAME
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(Unavailable) as caught:
        KeyRing.open(tmp_path, kek, now=clock.now())
    assert caught.value.details == {"reason": "corrupt_key_file"}


def test_a_key_file_readable_by_others_is_refused(ring: KeyRing, kek: bytes, clock: FrozenClock) -> None:
    """A key file with group or world permissions is refused (reason insecure_key_file), like ssh does."""
    ring.path.chmod(0o644)
    with pytest.raises(Unavailable) as caught:
        KeyRing.open(ring.path.parent, kek, now=clock.now())
    assert caught.value.details == {"reason": "insecure_key_file"}


def test_reload_sees_a_rotation_made_by_another_process(tmp_path: Path, kek: bytes, clock: FrozenClock) -> None:
    """A second ring instance (the CLI) rotates; the server's ring picks it up on reload()."""
    server = KeyRing.open(tmp_path, kek, now=clock.now())
    cli = KeyRing.open(tmp_path, kek, now=clock.now())
    generation = server.generation
    cli.rotate(clock.now())
    assert server.reload() is True
    assert server.active().kid == cli.active().kid
    assert server.generation > generation
    assert server.reload() is False


def test_kek_file_is_generated_private_and_parsed_back(tmp_path: Path) -> None:
    """generate_kek_file writes 32 random bytes as base64 with mode 0600, never overwriting an existing file."""
    path = tmp_path / "secrets" / "kek"
    generate_kek_file(path)
    assert _mode(path) == 0o600
    kek = read_kek_file(path)
    assert len(kek) == 32
    with pytest.raises(InvalidRequest):
        generate_kek_file(path)
    assert read_kek_file(path) == kek


@pytest.mark.parametrize("text", ["", "not base64 !!", base64.b64encode(b"short").decode(), "A" * 100])
def test_malformed_keks_are_refused(text: str) -> None:
    """A KEK that is not base64 of exactly 32 bytes is InvalidRequest."""
    with pytest.raises(InvalidRequest):
        parse_kek(text)


def test_url_safe_and_standard_base64_keks_are_both_accepted() -> None:
    """Operators may paste a KEK in either base64 alphabet."""
    raw = bytes(range(250, 256)) + secrets.token_bytes(26)
    assert parse_kek(base64.b64encode(raw).decode()) == raw
    assert parse_kek(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


def test_a_short_kek_is_refused_by_the_ring(tmp_path: Path, clock: FrozenClock) -> None:
    """The ring needs a 256-bit KEK."""
    with pytest.raises(InvalidRequest):
        KeyRing.open(tmp_path, b"0" * 16, now=clock.now())
