"""Ports of the credentials feature for signing and verifying tokens (RFC 9068 access tokens, RFC 9449 DPoP).

Verification failures raise CredentialInvalid or CredentialExpired whose external message is generic and whose
`details["reason"]` names the failed check for the audit record (never the token). Reasons of TokenVerifier:
`oversized`, `malformed`, `duplicate_claim`, `not_an_object`, `unsupported_crit`, `alg_not_allowed`,
`unknown_kid`, `bad_signature`, `wrong_typ`, `wrong_iss`, `missing_aud`, `wrong_aud`, `missing_claim`,
`bad_claim`, `expired`, `not_yet_valid`, `iat_in_future`. Reasons of ProofVerifier start with `dpop_`.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DpopProof", "ProofVerifier", "Signer", "TokenVerifier", "VerifiedToken"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedToken:
    """A token whose signature, type, issuer, audience and times were checked; `claims` is read-only."""

    claims: Mapping[str, Any]
    kid: str
    alg: str
    jti: str
    subject: str
    issued_at: dt.datetime
    expires_at: dt.datetime

    @property
    def confirmation_jkt(self) -> str | None:
        """The RFC 9449 `cnf.jkt` key thumbprint the token is bound to, if any."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        return jkt if isinstance(jkt, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DpopProof:
    """A verified RFC 9449 DPoP proof: the proof key's thumbprint and what the proof was made for."""

    jkt: str
    jti: str
    method: str
    url: str
    issued_at: dt.datetime


class Signer(Protocol):
    """Signs claims as a compact JWS with the active key; `typ` defaults to RFC 9068 `at+jwt`."""

    def sign(self, claims: Mapping[str, Any], *, typ: str = "at+jwt") -> str: ...

    def jwks(self) -> dict[str, Any]: ...


class TokenVerifier(Protocol):
    """Verifies one of our access tokens for exactly one expected audience."""

    def verify(self, token: str, *, audience: str) -> VerifiedToken: ...


class ProofVerifier(Protocol):
    """Verifies a DPoP proof for a request; with `access_token` also `ath`, with `expected_jkt` the key binding."""

    def verify(
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> DpopProof: ...
