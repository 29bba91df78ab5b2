"""The signing key ring on disk: ES256 or EdDSA keys in states active / next / retired, encrypted at rest.

What it owns
------------
* **Algorithms.** ES256 (ECDSA P-256, RFC 7518 §3.4) by default: the widest support among JWT libraries and the
  faster verification on the reference machine. EdDSA (Ed25519, RFC 8037) is the configurable alternative. The
  algorithm applies to keys generated from now on; existing keys keep theirs until they rotate out.
* **Key ids.** `kid` is the RFC 7638 SHA-256 thumbprint of the public key, so it is stable, unique and checkable.
* **States and overlap.** `next` is published in the JWKS before it signs anything, so verifiers that cache the
  JWKS already know it when it becomes `active`. `rotate(now)` promotes next → active, active → retired and
  generates a new next. A `retired` key stays published until every token it signed has expired;
  `prune(now, max_token_lifetime)` then drops it.
* **At rest.** Each private key (PKCS#8 DER) is sealed with AES-256-GCM (a random 96-bit nonce per key, the key
  id as associated data) under a 256-bit key-encryption key (KEK) handed to the constructor. After decryption
  the private key's thumbprint must equal its `kid`, so a swapped or edited entry is refused.
* **Storage.** One JSON file (`signing-keys.json`, mode 0600) in a directory (0700), written atomically (temp
  file, fsync, rename, fsync of the directory). Writers serialise on an advisory lock file, so the CLI's
  `remit keys rotate` and a running server never lose each other's changes; readers call `reload()`.

Losing the KEK means re-keying: the encrypted keys cannot be recovered. Delete the key file, start with a new
KEK, and every token signed by the old keys stops verifying (agents re-issue their task credentials). Keep
the KEK outside the key directory (environment or a mounted secret) in production.

Errors: a wrong KEK, a corrupt file or loose file permissions raise `Unavailable` with a precise message and a
`reason` in `details` (`wrong_kek`, `corrupt_key_file`, `insecure_key_file`), never a chain of crypto errors.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
import threading

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from remit.errors import InvalidRequest, Unavailable

__all__ = [
    "KEK_BYTES",
    "KEY_FILE_NAME",
    "KeyRing",
    "KeyState",
    "PrivateKey",
    "SigningAlgorithm",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "generate_kek_file",
    "jwk_thumbprint",
    "parse_kek",
    "read_kek_file",
]

KEK_BYTES: Final = 32
KEY_FILE_NAME: Final = "signing-keys.json"
_LOCK_FILE_NAME: Final = ".signing-keys.lock"
_SCHEMA: Final = 1
_NONCE_BYTES: Final = 12
_AAD_PREFIX: Final = b"remit-signing-key:v1:"
_MAX_KEY_FILE_BYTES: Final = 1_048_576
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SigningAlgorithm(StrEnum):
    """JWS algorithms the ring can generate keys for (the JOSE `alg` value)."""

    ES256 = "ES256"
    EDDSA = "EdDSA"


class KeyState(StrEnum):
    """Where a key is in its life: published before use (next), signing (active), verify-only (retired)."""

    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """One key of the ring: its public JWK, state and history; the private key never appears in repr."""

    kid: str
    algorithm: SigningAlgorithm
    state: KeyState
    created_at: dt.datetime
    activated_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    public_jwk: Mapping[str, str]
    private_key: PrivateKey = field(repr=False, compare=False)

    def published_jwk(self) -> dict[str, str]:
        """The public JWK as published in the JWKS: key members plus `kid`, `alg` and `use: sig`."""
        return {**self.public_jwk, "kid": self.kid, "alg": self.algorithm.value, "use": "sig"}


# ---------------------------------------------------------------- encodings and thumbprints


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError on anything else."""
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        msg = "not base64url"
        raise ValueError(msg)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3 SHA-256 thumbprint of a public JWK (EC, OKP or RSA), base64url; InvalidRequest otherwise."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise InvalidRequest("unsupported JWK key type", field="jwk.kty")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"JWK member {name!r} is missing", field=f"jwk.{name}")
        canonical[name] = value
    encoded = json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()
    return b64url_encode(hashlib.sha256(encoded).digest())


def _public_jwk(private_key: PrivateKey) -> dict[str, str]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def _generate(algorithm: SigningAlgorithm) -> PrivateKey:
    match algorithm:
        case SigningAlgorithm.ES256:
            return ec.generate_private_key(ec.SECP256R1())
        case SigningAlgorithm.EDDSA:
            return ed25519.Ed25519PrivateKey.generate()


def _new_key(algorithm: SigningAlgorithm, state: KeyState, now: dt.datetime) -> SigningKey:
    private_key = _generate(algorithm)
    public = _public_jwk(private_key)
    return SigningKey(
        kid=jwk_thumbprint(public),
        algorithm=algorithm,
        state=state,
        created_at=now,
        activated_at=now if state is KeyState.ACTIVE else None,
        public_jwk=public,
        private_key=private_key,
    )


# ---------------------------------------------------------------- the key-encryption key


def parse_kek(text: str) -> bytes:
    """Decode a KEK given as base64 (standard or url-safe alphabet); it must be exactly 32 bytes."""
    cleaned = text.strip()
    try:
        raw = base64.b64decode(cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the key-encryption key is not base64", field="kek") from None
    if len(raw) != KEK_BYTES:
        raise InvalidRequest(
            f"the key-encryption key must be {KEK_BYTES} bytes (base64 of 32 random bytes)", field="kek"
        )
    return raw


def read_kek_file(path: Path) -> bytes:
    """Read a KEK file written by `generate_kek_file`; a missing or unreadable file is Unavailable."""
    try:
        _check_private_mode(path)
        return parse_kek(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Unavailable(
            f"cannot read the key-encryption key file ({type(exc).__name__})", details={"reason": "kek_unreadable"}
        ) from None


def generate_kek_file(path: Path) -> None:
    """Write a new KEK (32 random bytes, base64) to `path` with mode 0600; never overwrites an existing file."""
    if path.exists():
        raise InvalidRequest("a key-encryption key file already exists; refusing to overwrite it", field="kek_file")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _atomic_write(path, base64.b64encode(secrets.token_bytes(KEK_BYTES)) + b"\n")


# ---------------------------------------------------------------- file handling


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _check_private_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise Unavailable(
            f"{path.name} is readable by others (mode {mode:04o}); it must be 0600",
            details={"reason": "insecure_key_file"},
        )


def _corrupt(what: str) -> Unavailable:
    return Unavailable(f"the signing key file is corrupt: {what}", details={"reason": "corrupt_key_file"})


def _timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _parse_timestamp(value: object, *, optional: bool = False) -> dt.datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _corrupt("a timestamp is missing")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _corrupt("a timestamp is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise _corrupt("a timestamp has no time zone")
    return parsed


class _Sealer:
    """AES-256-GCM sealing of one private key, bound to its key id."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_BYTES:
            raise InvalidRequest(f"the key-encryption key must be {KEK_BYTES} bytes", field="kek")
        self._aead = AESGCM(kek)

    def seal(self, key: SigningKey) -> dict[str, str]:
        der = key.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, der, _AAD_PREFIX + key.kid.encode())
        return {"nonce": b64url_encode(nonce), "ciphertext": b64url_encode(sealed)}

    def open(self, kid: str, nonce: str, ciphertext: str) -> PrivateKey:
        try:
            der = self._aead.decrypt(b64url_decode(nonce), b64url_decode(ciphertext), _AAD_PREFIX + kid.encode())
        except InvalidTag:
            raise Unavailable(
                "the key-encryption key does not decrypt the signing keys (wrong KEK, or the file was altered); "
                "without the right KEK the keys are lost and the ring must be re-keyed",
                details={"reason": "wrong_kek"},
            ) from None
        except ValueError:
            raise _corrupt("a sealed key is not base64url") from None
        try:
            loaded = serialization.load_der_private_key(der, password=None)
        except ValueError:
            raise _corrupt("a decrypted key is not PKCS#8") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise _corrupt("a key has an unsupported type")
        return loaded


# ---------------------------------------------------------------- the ring


class KeyRing:
    """The signing keys in one directory: exactly one active key, one next key and any retired keys.

    Thread-safe: readers see an immutable snapshot (tuple) swapped in whole; writers take a process lock and an
    advisory file lock. `generation` increases whenever the set of keys changes, so verifiers can rebuild caches.
    """

    def __init__(self, directory: Path, kek: bytes, *, algorithm: SigningAlgorithm = SigningAlgorithm.ES256) -> None:
        """Prefer `KeyRing.open`, which also creates the ring on first use."""
        self._directory = directory
        self._path = directory / KEY_FILE_NAME
        self._sealer = _Sealer(kek)
        self._algorithm = SigningAlgorithm(algorithm)
        self._keys: tuple[SigningKey, ...] = ()
        self._by_kid: dict[str, SigningKey] = {}
        self._file_stamp: tuple[int, int] | None = None
        self._generation = 0
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        directory: Path,
        kek: bytes,
        *,
        now: dt.datetime,
        algorithm: SigningAlgorithm = SigningAlgorithm.ES256,
    ) -> KeyRing:
        """Load the ring from `directory`, creating it (an active and a next key) if there is none yet."""
        ring = cls(directory, kek, algorithm=algorithm)
        with ring._lock, ring._file_lock():
            keys = ring._read() if ring._path.exists() else ()
            repaired = ring._complete(keys, now)
            if repaired != keys:
                ring._write(repaired)
            ring._install(repaired)
        return ring

    # ------------------------------------------------------------ reading

    @property
    def path(self) -> Path:
        return self._path

    @property
    def generation(self) -> int:
        """Changes whenever the published key set changes (rotate, prune, reload)."""
        return self._generation

    @property
    def algorithm(self) -> SigningAlgorithm:
        """The algorithm of newly generated keys."""
        return self._algorithm

    def published(self) -> tuple[SigningKey, ...]:
        """Every published key: active first, then next, then retired (newest first)."""
        return self._keys

    def active(self) -> SigningKey:
        """The key that signs now."""
        return next(k for k in self._keys if k.state is KeyState.ACTIVE)

    def next_key(self) -> SigningKey:
        """The key published ahead of its use; it becomes active at the next rotation."""
        return next(k for k in self._keys if k.state is KeyState.NEXT)

    def get(self, kid: str) -> SigningKey | None:
        """The published key with this `kid`, or None."""
        return self._by_kid.get(kid)

    def reload(self) -> bool:
        """Re-read the file if another process changed it; returns whether the key set changed."""
        stamp = self._stamp()
        if stamp == self._file_stamp:
            return False
        with self._lock:
            keys = self._read()
            if keys == self._keys:
                self._file_stamp = stamp
                return False
            self._install(keys)
            return True

    # ------------------------------------------------------------ changing

    def rotate(self, now: dt.datetime) -> SigningKey:
        """Promote next → active and active → retired, generate a new next key; returns the new active key."""
        with self._lock, self._file_lock():
            current = self._read()
            rotated: list[SigningKey] = []
            for key in current:
                match key.state:
                    case KeyState.ACTIVE:
                        rotated.append(replace(key, state=KeyState.RETIRED, retired_at=now))
                    case KeyState.NEXT:
                        rotated.append(replace(key, state=KeyState.ACTIVE, activated_at=now))
                    case KeyState.RETIRED:
                        rotated.append(key)
            keys = self._complete(tuple(rotated), now)
            self._write(keys)
            self._install(keys)
        return self.active()

    def prune(self, now: dt.datetime, max_token_lifetime: dt.timedelta) -> tuple[str, ...]:
        """Drop retired keys whose every token has expired (retired more than `max_token_lifetime` ago)."""
        with self._lock, self._file_lock():
            current = self._read()
            kept = tuple(
                k
                for k in current
                if k.state is not KeyState.RETIRED or k.retired_at is None or now < k.retired_at + max_token_lifetime
            )
            dropped = tuple(k.kid for k in current if k not in kept)
            if dropped:
                self._write(kept)
            self._install(kept)
        return dropped

    # ------------------------------------------------------------ internals

    def _complete(self, keys: tuple[SigningKey, ...], now: dt.datetime) -> tuple[SigningKey, ...]:
        """Ensure exactly one active and one next key exist (first start, or a repaired file)."""
        result = list(keys)
        if not any(k.state is KeyState.ACTIVE for k in result):
            waiting = next((k for k in result if k.state is KeyState.NEXT), None)
            if waiting is not None:
                result[result.index(waiting)] = replace(waiting, state=KeyState.ACTIVE, activated_at=now)
            else:
                result.append(_new_key(self._algorithm, KeyState.ACTIVE, now))
        if not any(k.state is KeyState.NEXT for k in result):
            result.append(_new_key(self._algorithm, KeyState.NEXT, now))
        order = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        result.sort(key=lambda k: (order[k.state], -(((k.retired_at or epoch) - epoch).total_seconds())))
        return tuple(result)

    def _install(self, keys: tuple[SigningKey, ...]) -> None:
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._file_stamp = self._stamp()
        self._generation += 1

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = self._path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self._directory / _LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def _read(self) -> tuple[SigningKey, ...]:
        try:
            _check_private_mode(self._path)
            with self._path.open("rb") as handle:
                raw = handle.read(_MAX_KEY_FILE_BYTES + 1)
        except FileNotFoundError:
            raise Unavailable("the signing key file is missing", details={"reason": "missing_key_file"}) from None
        except OSError as exc:
            raise Unavailable(
                f"cannot read the signing key file ({type(exc).__name__})", details={"reason": "key_file_unreadable"}
            ) from None
        if len(raw) > _MAX_KEY_FILE_BYTES:
            raise _corrupt("the file is too large")
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            raise _corrupt("not JSON") from None
        if not isinstance(document, dict) or document.get("schema") != _SCHEMA:
            raise _corrupt("unknown schema")
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise _corrupt("no key list")
        keys = tuple(self._load_entry(entry) for entry in entries)
        if len({k.kid for k in keys}) != len(keys):
            raise _corrupt("a key id appears twice")
        for state in (KeyState.ACTIVE, KeyState.NEXT):
            if sum(k.state is state for k in keys) > 1:
                raise _corrupt(f"more than one {state.value} key")
        return keys

    def _load_entry(self, entry: object) -> SigningKey:
        if not isinstance(entry, dict):
            raise _corrupt("a key entry is not an object")
        kid, nonce, ciphertext = entry.get("kid"), entry.get("nonce"), entry.get("ciphertext")
        if not isinstance(kid, str) or not isinstance(nonce, str) or not isinstance(ciphertext, str):
            raise _corrupt("a key entry lacks kid, nonce or ciphertext")
        try:
            algorithm = SigningAlgorithm(str(entry.get("alg")))
            state = KeyState(str(entry.get("state")))
        except ValueError:
            raise _corrupt("a key entry has an unknown algorithm or state") from None
        private_key = self._sealer.open(kid, nonce, ciphertext)
        public = _public_jwk(private_key)
        expected_type = ec.EllipticCurvePrivateKey if algorithm is SigningAlgorithm.ES256 else ed25519.Ed25519PrivateKey
        if jwk_thumbprint(public) != kid or not isinstance(private_key, expected_type):
            raise _corrupt("a key does not match its key id")
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and not isinstance(private_key.curve, ec.SECP256R1):
            raise _corrupt("an ES256 key is not on P-256")
        created_at = _parse_timestamp(entry.get("created_at"))
        assert created_at is not None  # noqa: S101 - _parse_timestamp returns a value unless optional
        return SigningKey(
            kid=kid,
            algorithm=algorithm,
            state=state,
            created_at=created_at,
            activated_at=_parse_timestamp(entry.get("activated_at"), optional=True),
            retired_at=_parse_timestamp(entry.get("retired_at"), optional=True),
            public_jwk=public,
            private_key=private_key,
        )

    def _write(self, keys: tuple[SigningKey, ...]) -> None:
        entries = [
            {
                "kid": k.kid,
                "alg": k.algorithm.value,
                "state": k.state.value,
                "created_at": _timestamp(k.created_at),
                "activated_at": _timestamp(k.activated_at),
                "retired_at": _timestamp(k.retired_at),
                "public_jwk": dict(k.public_jwk),
                **self._sealer.seal(k),
            }
            for k in keys
        ]
        document = {"schema": _SCHEMA, "keys": entries}
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(self._path, json.dumps(document, indent=2).encode() + b"\n")
