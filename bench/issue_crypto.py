"""Signing and verification throughput of the JOSE adapter beside raw `cryptography`, for ES256 and EdDSA.

Run: `.venv/bin/python bench/issue_crypto.py` (about 20 s). For each algorithm it prints operations per second for
raw sign / verify (the floor set by the curve), adapter sign (claims → compact JWS), adapter verify on first
sight (parse + allow-list + kid + signature + claims) and adapter verify of a cached token (hash + claims), with
the ratio of each adapter figure to the raw one measured in the same run.
"""

from __future__ import annotations

import secrets
import tempfile
import time

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from remit.adapters.jose import AccessTokenSigner, AccessTokenVerifier
from remit.adapters.keys import KeyRing, SigningAlgorithm
from remit.testing import FrozenClock

SECONDS_PER_MEASURE = 1.0
ISSUER = "https://remit.example"
AUDIENCE = "tool:payments"


def rate(operation: Callable[[int], object], seconds: float = SECONDS_PER_MEASURE) -> float:
    """Calls per second of operation(i), i counting up, over about `seconds`."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            operation(count)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def claims(clock: FrozenClock, jti: str) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    return {
        "iss": ISSUER,
        "sub": "spiffe://acme.example/agents/invoice-bot",
        "client_id": "spiffe://acme.example/agents/invoice-bot",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": jti,
        "scope": "invoices.read",
        "txn": "tsk_01j0000000000000000000000",
        "authorization_details": [{"type": "https://remit.dev/task", "actions": ["read"], "identifier": "tsk_01"}],
    }


def measure(algorithm: SigningAlgorithm, directory: Path) -> dict[str, float]:
    clock = FrozenClock()
    ring = KeyRing.open(directory, secrets.token_bytes(32), now=clock.now(), algorithm=algorithm)
    signer = AccessTokenSigner(ring)
    verifier = AccessTokenVerifier(ring, issuer=ISSUER, clock=clock, cache_size=1_000_000)
    private_key = ring.active().private_key
    public_key = private_key.public_key()
    message = signer.sign(claims(clock, "sample")).rsplit(".", 1)[0].encode()

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(hashes.SHA256())
        raw_signature = private_key.sign(message, ecdsa)
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TypeError(public_key)

        def raw_sign(_: int) -> object:
            return private_key.sign(message, ecdsa)

        def raw_verify(_: int) -> object:
            return public_key.verify(raw_signature, message, ecdsa)

    else:
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise TypeError(public_key)
        raw_signature = private_key.sign(message)

        def raw_sign(_: int) -> object:
            return private_key.sign(message)

        def raw_verify(_: int) -> object:
            return public_key.verify(raw_signature, message)

    results = {"raw sign": rate(raw_sign), "raw verify": rate(raw_verify)}
    results["adapter sign"] = rate(lambda i: signer.sign(claims(clock, f"jti-{i}")))
    fresh = [signer.sign(claims(clock, f"fresh-{i}")) for i in range(int(results["raw verify"] * 1.5))]
    results["adapter verify, first sight"] = rate(lambda i: verifier.verify(fresh[i], audience=AUDIENCE))
    token = fresh[0]
    results["adapter verify, cached"] = rate(lambda _: verifier.verify(token, audience=AUDIENCE))
    return results


def main() -> None:
    print(f"{'algorithm':<8} {'operation':<30} {'ops/s':>12}  ratio")
    summary: dict[str, dict[str, float]] = {}
    for algorithm in (SigningAlgorithm.ES256, SigningAlgorithm.EDDSA):
        with tempfile.TemporaryDirectory() as directory:
            results = measure(algorithm, Path(directory))
        summary[algorithm.value] = results
        for name, value in results.items():
            floor = results["raw sign"] if "sign" in name else results["raw verify"]
            ratio = "" if name.startswith("raw") else f"{value / floor:5.2f}x raw"
            print(f"{algorithm.value:<8} {name:<30} {value:>12,.0f}  {ratio}")
    es, ed = summary["ES256"], summary["EdDSA"]
    print(f"ES256 / EdDSA raw verify: {es['raw verify'] / ed['raw verify']:.2f}x")
    first_sight = es["adapter verify, first sight"] / ed["adapter verify, first sight"]
    print(f"ES256 / EdDSA adapter first-sight verify: {first_sight:.2f}x")


if __name__ == "__main__":
    main()
