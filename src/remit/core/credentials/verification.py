"""`verify(token, audience, proof)`: the one credential check every enforcement point uses.

Order (each step only runs when the previous passed): parse → algorithm → signature (cached keys) →
`typ` → `iss` → `aud` → time, all in the TokenVerifier adapter; then, here: claims shape →
revocation (jti, task, lineage, epoch — from memory) → DPoP binding. The task deadline needs no
check of its own: `exp` never passes it. No database
read. Externally every failure is `credential_invalid`, `credential_expired` or
`credential_revoked`; the precise reason stays in `details["reason"]` for the audit record.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from remit.core.credentials.models import CLAIMS_VERSION, VerifiedCredential
from remit.core.credentials.ports import ProofVerifier, TokenVerifier
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.tasks.models import AuthorizationDetail, parse_authorization_details
from remit.errors import CredentialInvalid, CredentialRevoked, InvalidRequest, Unavailable

__all__ = ["DpopCheck", "DpopRequest", "Verifier"]

# Parsed credentials kept (by jti) so a cached token is not re-parsed on every use; cleared when full.
_MAX_PARSED = 50_000


@dataclass(frozen=True, slots=True)
class DpopRequest:
    """A DPoP proof and the request it must match (method and URL), as an entrypoint received them."""

    proof: str | None
    method: str
    url: str


class DpopCheck(Protocol):
    """The request a DPoP proof must match (RFC 9449 §4.3)."""

    @property
    def proof(self) -> str | None: ...

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> str: ...


def _claim(claims: Mapping[str, Any], name: str, kind: type) -> Any:  # noqa: ANN401 - narrowed by `kind`
    value = claims.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise CredentialInvalid(details={"reason": f"bad_claim:{name}"})
    return value


class Verifier:
    """Verifies task credentials against signature, time, revocation, task state and DPoP binding."""

    def __init__(
        self,
        tokens: TokenVerifier,
        index: RevocationIndex,
        *,
        proofs: ProofVerifier | None = None,
        index_is_current: Callable[[], bool] | None = None,
    ) -> None:
        self._tokens = tokens
        self._index = index
        self._proofs = proofs
        # When the index may be missing revocations (the store is unreachable), nothing verifies.
        self._index_is_current = index_is_current
        self._parsed_by_jti: dict[str, tuple[Mapping[str, Any], VerifiedCredential]] = {}

    def verify(
        self, token: str, *, audience: str, dpop: DpopCheck | None = None, check_binding: bool = True
    ) -> VerifiedCredential:
        """Verify for `audience`; `check_binding=False` only where the act can only reduce access (revocation)."""
        if self._index_is_current is not None and not self._index_is_current():
            msg = "revocations are not current; refusing to verify until they are"
            raise Unavailable(msg)
        claims = self._tokens.verify(token, audience=audience).claims
        credential = self._parsed(claims)
        reason = self._index.revoked_reason(
            jti=credential.jti, task_id=credential.task_id, lineage=credential.lineage, epoch=credential.epoch
        )
        if reason is not None:
            raise CredentialRevoked(details={"reason": reason, "jti": credential.jti, "task_id": credential.task_id})
        if credential.cnf_jkt is not None and check_binding:
            self._check_binding(credential, token, dpop)
        return credential

    def _parsed(self, claims: Mapping[str, Any]) -> VerifiedCredential:
        """Parse once per verified claims object: the token verifier hands back the same one while it is cached."""
        jti = claims.get("jti")
        kept = self._parsed_by_jti.get(jti) if isinstance(jti, str) else None
        if kept is not None and kept[0] is claims:
            return kept[1]
        credential = self._parse(claims)
        if len(self._parsed_by_jti) >= _MAX_PARSED:
            self._parsed_by_jti.clear()
        self._parsed_by_jti[credential.jti] = (claims, credential)
        return credential

    def _check_binding(self, credential: VerifiedCredential, token: str, dpop: DpopCheck | None) -> None:
        if dpop is None or dpop.proof is None:
            raise CredentialInvalid(details={"reason": "dpop_proof_missing"})
        if self._proofs is None:
            raise CredentialInvalid(details={"reason": "dpop_unsupported"})
        # Checks htm, htu, iat, single-use jti, ath and that the proof key is the bound key.
        self._proofs.verify(
            dpop.proof, method=dpop.method, url=dpop.url, access_token=token, expected_jkt=credential.cnf_jkt
        )

    @staticmethod
    def _parse(claims: Mapping[str, Any]) -> VerifiedCredential:
        if claims.get("remit_ver") != CLAIMS_VERSION:
            raise CredentialInvalid(details={"reason": "bad_claim:remit_ver"})
        raw_details = _claim(claims, "authorization_details", list)
        try:
            details: tuple[AuthorizationDetail, ...] = parse_authorization_details(raw_details)
        except InvalidRequest as error:
            raise CredentialInvalid(details={"reason": "bad_claim:authorization_details"}) from error
        lineage = claims.get("remit_lineage", [])
        if not isinstance(lineage, list) or not all(isinstance(t, str) for t in lineage):
            raise CredentialInvalid(details={"reason": "bad_claim:remit_lineage"})
        cnf = claims.get("cnf")
        cnf_jkt = None
        if cnf is not None:
            if not isinstance(cnf, dict) or not isinstance(cnf.get("jkt"), str):
                raise CredentialInvalid(details={"reason": "bad_claim:cnf"})
            cnf_jkt = cnf["jkt"]
        audience = claims.get("aud")
        return VerifiedCredential(
            jti=_claim(claims, "jti", str),
            task_id=_claim(claims, "txn", str),
            agent_id=_claim(claims, "remit_agent", str),
            subject=_claim(claims, "sub", str),
            client_id=_claim(claims, "client_id", str),
            audience=audience if isinstance(audience, str) else "",
            issued_at=dt.datetime.fromtimestamp(_claim(claims, "iat", int), tz=dt.UTC),
            expires_at=dt.datetime.fromtimestamp(_claim(claims, "exp", int), tz=dt.UTC),
            details=details,
            lineage=tuple(lineage),
            epoch=_claim(claims, "remit_epoch", int),
            environment=_claim(claims, "remit_env", str),
            cnf_jkt=cnf_jkt,
            claims=dict(claims),
        )
