"""Where an agent's workload evidence comes from: files, or the SPIFFE Workload API.

Sources: a JWT-SVID file, an OIDC token file, an X.509-SVID in PEM files, and JWT- or X.509-SVIDs from
the SPIFFE Workload API.

Evidence is fetched fresh for every issuance: files are re-read (SPIRE helpers and Kubernetes rotate
them) and the Workload API is asked each time, so a replayed or expired token is never reused by
accident. An X.509-SVID is sent as a new assertion each time, signed with the SVID's key (ADR 0017).
`SpiffeX509Source` is the exception that keeps the rule: it holds the Workload API's X.509 stream open,
so the SVID it signs with is always the one the agent pushed last, and only the assertion is new.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, Self

from remit.errors import InvalidRequest, RemitError, Unavailable
from remit.sdk.x509_svid import require_cryptography, x509_svid_assertion
from remit.wire.tasks import EvidenceIn

__all__ = [
    "EvidenceSource",
    "JwtSvidFile",
    "OidcTokenFile",
    "SpiffeWorkloadApi",
    "SpiffeX509Source",
    "SpiffeX509WorkloadApi",
    "X509SvidFiles",
]

MAX_TOKEN_BYTES = 16_384
MAX_PEM_BYTES = 65_536
MAX_SPIFFE_ID = 2048  # SPIFFE ID spec §2.4: at most 2048 bytes


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


def _from_workload_api(socket_path: str | None, fetch: Callable[[Any], Any], what: str) -> Any:  # noqa: ANN401
    """`fetch(client)` on a SPIFFE Workload API client (the optional `spiffe` package); any failure is Unavailable."""
    try:
        from spiffe import WorkloadApiClient  # noqa: PLC0415 - optional
    except ImportError as exc:
        msg = "the SPIFFE Workload API needs the `spiffe` package (pip install spiffe)"
        raise Unavailable(msg) from exc
    try:
        with WorkloadApiClient(socket_path) if socket_path else WorkloadApiClient() as client:
            return fetch(client)
    except RemitError:
        raise  # the caller's own refusal (a SPIFFE ID the package cannot parse), not an outage
    except Exception as exc:
        msg = f"the SPIFFE Workload API did not give {what} ({type(exc).__name__})"
        raise Unavailable(msg) from exc


def _checked_spiffe_id(spiffe_id: str | None) -> str | None:
    """`spiffe_id` when it is shaped like a SPIFFE ID; the `spiffe` package parses it fully when fetching."""
    if spiffe_id is not None and (
        not spiffe_id.startswith("spiffe://") or len(spiffe_id) > MAX_SPIFFE_ID or any(c.isspace() for c in spiffe_id)
    ):
        msg = f"{spiffe_id[:80]!r} is not a SPIFFE ID (spiffe://trust-domain/path)"
        raise InvalidRequest(msg, field="spiffe_id")
    return spiffe_id


def _parsed_spiffe_id(spiffe_id: str) -> Any:  # noqa: ANN401 - the optional package's SpiffeId
    """The `spiffe` package's SpiffeId for `spiffe_id`; one it refuses is InvalidRequest, not an outage."""
    from spiffe import SpiffeId  # noqa: PLC0415 - optional; `_from_workload_api` has named the package if absent
    from spiffe.errors import PySpiffeError  # noqa: PLC0415

    try:
        return SpiffeId(spiffe_id)
    except PySpiffeError as exc:
        msg = f"{spiffe_id[:80]!r} is not a SPIFFE ID ({exc})"
        raise InvalidRequest(msg, field="spiffe_id") from None


class SpiffeWorkloadApi:
    """JWT-SVIDs from the SPIFFE Workload API, through the optional `spiffe` package.

    `spiffe_id` asks for the SVID of that identity, for a workload entitled to several; without it, the
    Workload API's default (first) identity.
    """

    def __init__(self, audience: str, *, socket_path: str | None = None, spiffe_id: str | None = None) -> None:
        self._audience = audience
        self._socket_path = socket_path
        self._spiffe_id = _checked_spiffe_id(spiffe_id)

    def evidence(self) -> EvidenceIn:
        def fetch(client: Any) -> Any:  # noqa: ANN401 - the optional package's types
            subject = None if self._spiffe_id is None else _parsed_spiffe_id(self._spiffe_id)
            return client.fetch_jwt_svid(audience={self._audience}, subject=subject)

        svid = _from_workload_api(self._socket_path, fetch, "a JWT-SVID")
        return EvidenceIn(kind="jwt_svid", token=str(svid.token))


class X509SvidFiles:
    """An X.509-SVID in PEM files (SPIRE's `api fetch x509 -write`, a sidecar): chain and key, re-read each time.

    `certificates` holds the leaf first, then any intermediates; `key` the SVID's private key (PKCS#8 or
    traditional PEM, unencrypted, as SPIRE writes it). `audience` is Remit's evidence audience (its issuer URL
    unless configured otherwise).
    """

    def __init__(self, certificates: Path | str, key: Path | str, *, audience: str) -> None:
        self._certificates = Path(certificates)
        self._key = Path(key)
        self._audience = audience

    def evidence(self) -> EvidenceIn:
        require_cryptography()
        from cryptography import x509  # noqa: PLC0415 - optional dependency
        from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: PLC0415

        chain_pem, key_pem = self._read(self._certificates), self._read(self._key)
        try:
            chain = x509.load_pem_x509_certificates(chain_pem)
            key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            msg = f"{self._certificates} and {self._key} do not hold an X.509-SVID and its key ({type(exc).__name__})"
            raise InvalidRequest(msg, field="evidence") from None
        return EvidenceIn(kind="x509_svid", token=x509_svid_assertion(chain, key, audience=self._audience))

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            data = path.read_bytes()[: MAX_PEM_BYTES + 1]
        except OSError as exc:
            msg = f"cannot read the X.509-SVID from {path} ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        if len(data) > MAX_PEM_BYTES:
            msg = f"{path} is too large for an X.509-SVID"
            raise InvalidRequest(msg, field="evidence")
        return data


class SpiffeX509WorkloadApi:
    """X.509-SVIDs from the SPIFFE Workload API, through the optional `spiffe` package, sent as assertions.

    `spiffe_id` picks the SVID of that identity among those the Workload API gives the workload; without
    it, the default (first) one. When the Workload API holds none for `spiffe_id`, `evidence()` is
    Unavailable: an entitlement can appear later, once its registration reaches the agent.
    """

    def __init__(self, audience: str, *, socket_path: str | None = None, spiffe_id: str | None = None) -> None:
        self._audience = audience
        self._socket_path = socket_path
        self._spiffe_id = _checked_spiffe_id(spiffe_id)

    def evidence(self) -> EvidenceIn:
        if self._spiffe_id is None:
            svid = _from_workload_api(self._socket_path, lambda client: client.fetch_x509_svid(), "an X.509-SVID")
        else:
            wanted = self._spiffe_id

            def fetch(client: Any) -> Any:  # noqa: ANN401 - the optional package's types
                parsed = _parsed_spiffe_id(wanted)  # compared parsed: the trust domain is case-insensitive
                return next((each for each in client.fetch_x509_svids() if each.spiffe_id == parsed), None)

            svid = _from_workload_api(self._socket_path, fetch, "X.509-SVIDs")
            if svid is None:
                msg = f"the SPIFFE Workload API holds no X.509-SVID for {wanted}"
                raise Unavailable(msg)
        token = x509_svid_assertion(list(svid.cert_chain), svid.private_key, audience=self._audience)
        return EvidenceIn(kind="x509_svid", token=token)


class SpiffeX509Source:
    """X.509-SVIDs kept current by the SPIFFE Workload API's stream (the `spiffe` package's `X509Source`).

    `SpiffeX509WorkloadApi` asks the Workload API at every `evidence()`; this opens one stream when it is
    made (waiting up to `timeout_seconds` for the first SVIDs) and keeps it: the agent pushes each rotation,
    and `evidence()` signs a new assertion with the SVID held in memory. A long-lived agent that starts many
    tasks makes one Workload API call instead of one per task. Close it, or use it as a context manager,
    to end the stream.

    `spiffe_id` picks that identity's SVID among those the workload is entitled to; while the Workload API
    holds none for it (a registration not yet at the agent), `evidence()` is Unavailable.
    """

    def __init__(
        self,
        audience: str,
        *,
        socket_path: str | None = None,
        spiffe_id: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._audience = audience
        self._spiffe_id = _checked_spiffe_id(spiffe_id)
        if not 0 < timeout_seconds <= 300:  # noqa: PLR2004 - a bound on the first wait, not a magic number
            raise InvalidRequest("timeout_seconds is more than 0 and at most 300", field="timeout_seconds")
        try:
            from spiffe import X509Source  # noqa: PLC0415 - optional
        except ImportError as exc:
            msg = "the SPIFFE Workload API needs the `spiffe` package (pip install spiffe)"
            raise Unavailable(msg) from exc
        self._wanted = None if self._spiffe_id is None else _parsed_spiffe_id(self._spiffe_id)
        try:
            self._source = X509Source(
                socket_path=socket_path, timeout_in_seconds=timeout_seconds, svid_picker=self._pick
            )
        except Exception as exc:
            msg = f"the SPIFFE Workload API did not give X.509-SVIDs ({type(exc).__name__})"
            raise Unavailable(msg) from exc

    def _pick(self, svids: list[Any]) -> Any:  # noqa: ANN401 - the optional package's X509Svid
        # Never raise: a picker that fails closes the package's source for good, and an entitlement
        # missing now may arrive with the next update. `evidence()` refuses a fallback that is not it.
        wanted = self._wanted
        return next((svid for svid in svids if wanted is None or svid.spiffe_id == wanted), svids[0])

    def evidence(self) -> EvidenceIn:
        try:
            svid = self._source.get_x509_context().default_svid
        except Exception as exc:
            msg = f"the SPIFFE Workload API stream has no X.509-SVID ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        if self._wanted is not None and svid.spiffe_id != self._wanted:
            msg = f"the SPIFFE Workload API holds no X.509-SVID for {self._spiffe_id}"
            raise Unavailable(msg)
        token = x509_svid_assertion(list(svid.cert_chain), svid.private_key, audience=self._audience)
        return EvidenceIn(kind="x509_svid", token=token)

    def close(self) -> None:
        """End the stream; `evidence()` is Unavailable afterwards."""
        self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
