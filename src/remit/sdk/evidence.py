"""Where an agent's workload evidence comes from: a JWT-SVID file, an OIDC token file, or the SPIFFE Workload API.

Evidence is fetched fresh for every issuance: files are re-read (SPIRE helpers and Kubernetes rotate them)
and the Workload API is asked each time, so a replayed or expired token is never reused by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from remit.errors import InvalidRequest, Unavailable
from remit.wire.tasks import EvidenceIn

__all__ = ["EvidenceSource", "JwtSvidFile", "OidcTokenFile", "SpiffeWorkloadApi"]

MAX_TOKEN_BYTES = 16_384


class EvidenceSource(Protocol):
    """Produces fresh workload evidence on demand."""

    def evidence(self) -> EvidenceIn: ...


class _TokenFile:
    kind: Literal["jwt_svid", "oidc"]

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)

    def evidence(self) -> EvidenceIn:
        try:
            raw = self._path.read_bytes()[: MAX_TOKEN_BYTES + 1]
        except OSError as exc:
            msg = f"cannot read workload evidence from {self._path} ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        token = raw.decode("ascii", errors="replace").strip()
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:  # noqa: PLR2004 - a compact JWS
            msg = f"{self._path} does not hold a JWT"
            raise InvalidRequest(msg, field="evidence")
        return EvidenceIn(kind=self.kind, token=token)


class JwtSvidFile(_TokenFile):
    """A JWT-SVID written to a file (SPIRE's helper, a sidecar)."""

    kind = "jwt_svid"


class OidcTokenFile(_TokenFile):
    """An OIDC workload token file (a Kubernetes projected service-account token, a CI job token)."""

    kind = "oidc"


class SpiffeWorkloadApi:
    """JWT-SVIDs from the SPIFFE Workload API, through the optional `spiffe` package."""

    def __init__(self, audience: str, *, socket_path: str | None = None) -> None:
        self._audience = audience
        self._socket_path = socket_path

    def evidence(self) -> EvidenceIn:
        try:
            from spiffe import WorkloadApiClient  # type: ignore[import-not-found]  # noqa: PLC0415 - optional
        except ImportError as exc:
            msg = "the SPIFFE Workload API needs the `spiffe` package (pip install spiffe)"
            raise Unavailable(msg) from exc
        try:
            client: Any = WorkloadApiClient(self._socket_path) if self._socket_path else WorkloadApiClient()
            with client:
                svid = client.fetch_jwt_svid(audience={self._audience})
        except Exception as exc:
            msg = f"the SPIFFE Workload API did not give a JWT-SVID ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        return EvidenceIn(kind="jwt_svid", token=str(svid.token))
