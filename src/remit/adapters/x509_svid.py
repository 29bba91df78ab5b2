"""Attestor for SPIFFE X.509-SVIDs, presented as a short JWT assertion signed with the SVID's own key (ADR 0017).

A certificate is public, so holding one proves nothing: the workload proves it holds the X.509-SVID's
private key by signing a fresh assertion with it, in the shape of an RFC 7523 client assertion, and sends
the SVID chain in the JOSE `x5c` header (RFC 7515 §4.1.6):

    header  {"alg": "ES256", "typ": "JWT", "x5c": [<leaf, base64 DER>, <intermediates>...]}
    claims  {"iss": <SPIFFE ID>, "sub": <SPIFFE ID>, "aud": <Remit's evidence audience>,
             "iat": ..., "exp": ..., "jti": <unique>}

What is enforced, before anything else runs:

* Header: compact serialization; only `alg`, `typ` and `x5c` (so never `kid`, `jku`, `x5u` or `jwk`: the key
  is the leaf's and nothing else); `typ`, if present, `JWT` or `JOSE`; `alg` from the JWT-SVID list (never
  `none` or HMAC) and fitting the leaf's key type; `x5c` one to `MAX_CHAIN` standard-base64 DER certificates.
* Leaf (SPIFFE X.509-SVID §4, §5): exactly one URI SAN, a workload SPIFFE ID whose trust domain selects the
  bundle; not a CA; key usage present with `digitalSignature` and without `keyCertSign` or `cRLSign`.
* Claims: `iss` and `sub` both the leaf's SPIFFE ID; `aud` Remit's audience alone; `exp` and `iat` required,
  `nbf`/`iat` with bounded skew; `exp` not after the leaf's `notAfter`; `jti` required (the assertion is the
  workload's own, so it can always carry one: every X.509-SVID assertion is single use).
* Trust: the trust domain's bundle has X.509 authorities (`use: x509-svid`), and the chain's top names one
  of them as its issuer (the bundle is fetched again at once, rate-limited, when none does: a rotation).

Left to the DeferredCheck (ADR 0015), because it costs signature checks: X.509 path validation of the chain
to that trust domain's authorities only, at the attestation time, with cryptography's verifier (RFC 5280 and
its CA/Browser-forum profile for the chain), then the assertion's signature with the leaf's key.

A workload signs many assertions with one SVID, so a chain that passed path validation is remembered
(`ValidatedChains`): the same `x5c`, against the very same authorities (a bundle refresh makes new ones), at
a time inside every certificate's validity of the path that was built, passes without its signatures being
checked again. The assertion's own signature is checked every time. Refusals are never remembered.

Failures raise AttestationFailed with `details["reason"]`: the parser's (`malformed`, `oversized`,
`duplicate_claim`, `unsupported_crit`), `forbidden_header`, `wrong_typ`, `alg_not_allowed`, `missing_x5c`,
`bad_x5c`, `chain_too_long`, `bad_svid`, `svid_is_ca`, `bad_key_usage`, `unsupported_key_type`, `weak_key`,
`alg_key_mismatch`, `subject_mismatch`, `unknown_trust_domain`, `bundle_revoked`, `no_x509_authorities`,
`untrusted_chain`, `missing_aud`, `wrong_aud`, `missing_claim`, `bad_claim`, `missing_jti`, `expired`,
`not_yet_valid`, `iat_in_future`, `outlives_svid`, `bad_signature`.
"""

from __future__ import annotations

import datetime as dt
import threading

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from cryptography import x509
from cryptography.x509 import verification

from remit.adapters.jose import (
    DEFAULT_LEEWAY,
    KeySetCache,
    VerificationKey,
    check_audience,
    check_times,
    import_public_key,
    parse_compact,
)
from remit.adapters.jws_evidence import JwsEvidenceAttestor, check_signature, check_spiffe_header, refused
from remit.adapters.spiffe import JWT_SVID_ALGORITHMS, TrustBundle, checked_algorithms, der_certificate
from remit.core.attestation.models import MAX_EVIDENCE_BYTES, DeferredCheck, EvidenceKind, WorkloadIdentity
from remit.core.registry.models import SpiffeId
from remit.errors import InvalidRequest

__all__ = ["MAX_CHAIN", "ValidatedChains", "X509SvidAttestor"]

# A SPIRE chain is the leaf and at most a couple of intermediates; anything longer is not an SVID chain.
MAX_CHAIN: Final = 4
_MAX_JTI: Final = 256
_ALLOWED_HEADERS: Final = frozenset({"alg", "typ", "x5c"})

_E = TypeVar("_E", bound=x509.ExtensionType)

# The Web PKI profile of RFC 5280 for the chain, but with the authority key identifier optional: RFC 5280 asks
# CAs for it, the SPIFFE X.509-SVID spec does not, and SPIFFE issuers other than SPIRE may leave it out.
_CA_POLICY: Final = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.AuthorityKeyIdentifier, verification.Criticality.NON_CRITICAL, None
)
_EE_POLICY: Final = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.AuthorityKeyIdentifier, verification.Criticality.NON_CRITICAL, None
)


class X509SvidAttestor(JwsEvidenceAttestor):
    """Verifies X.509-SVID assertions for Remit's audience against the trust domains' X.509 authorities."""

    def __init__(
        self,
        bundles: Mapping[str, KeySetCache[TrustBundle]],
        *,
        audience: str,
        algorithms: Iterable[str] = JWT_SVID_ALGORITHMS,
        leeway: dt.timedelta = DEFAULT_LEEWAY,
        validated_chains: int = 1024,
    ) -> None:
        self._algorithms = checked_algorithms(algorithms, audience, evidence="X.509-SVID assertion")
        self._bundles = bundles
        self._audience = audience
        self._leeway = leeway
        self._validated = ValidatedChains(validated_chains)

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.X509_SVID

    @property
    def validated_chains(self) -> ValidatedChains:
        """The chains kept after passing path validation (for metrics and tests)."""
        return self._validated

    def _attest(self, token: str, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        jws = parse_compact(token, max_bytes=MAX_EVIDENCE_BYTES)
        claims = jws.payload
        check_spiffe_header(jws, allowed=_ALLOWED_HEADERS, algorithms=self._algorithms)
        x5c = _x5c(jws.header.get("x5c"))
        svid = self._validated.parsed(x5c) or _parse(x5c)
        if not svid.key.fits(jws.alg):
            raise refused("alg_key_mismatch")
        spiffe_id = svid.spiffe_id
        if claims.get("iss") != str(spiffe_id) or claims.get("sub") != str(spiffe_id):
            raise refused("subject_mismatch")
        source = self._bundles.get(spiffe_id.trust_domain)
        if source is None:
            raise refused("unknown_trust_domain")
        authorities = _authorities(source, svid.chain[-1])
        check_audience(claims, self._audience, single=True)
        if claims.get("iat") is None:
            raise refused("missing_claim")
        expires_at, issued_at = check_times(claims, now=now, leeway=self._leeway)
        if expires_at > svid.chain[0].not_valid_after_utc:
            raise refused("outlives_svid")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise refused("missing_jti")
        identity = WorkloadIdentity.for_spiffe(
            spiffe_id,
            claims=claims,
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
            kind=EvidenceKind.X509_SVID,
        )

        def check() -> None:
            self._validated.validate(svid, authorities, now)
            check_signature(jws, svid.key)

        return identity, DeferredCheck(check)


@dataclass(frozen=True, slots=True)
class _Svid:
    """What an `x5c` header carries, parsed and past the SVID leaf rules: a pure function of its entries."""

    x5c: tuple[str, ...]
    chain: tuple[x509.Certificate, ...]  # leaf first
    key: VerificationKey  # the leaf's
    spiffe_id: SpiffeId


def _parse(x5c: tuple[str, ...]) -> _Svid:
    """The chain of `x5c` and its leaf's key and SPIFFE ID, after the leaf rules."""
    try:
        chain = tuple(der_certificate(entry) for entry in x5c)
    except ValueError:
        raise refused("bad_x5c") from None
    key = import_public_key(chain[0].public_key())
    return _Svid(x5c, chain, key, _workload_id(chain[0]))


def _x5c(x5c: object) -> tuple[str, ...]:
    """The `x5c` entries, leaf first (RFC 7515 §4.1.6: standard base64 of DER, not base64url)."""
    if x5c is None:
        raise refused("missing_x5c")
    if not isinstance(x5c, list) or not x5c or not all(isinstance(entry, str) for entry in x5c):
        raise refused("bad_x5c")
    if len(x5c) > MAX_CHAIN:
        raise refused("chain_too_long")
    return tuple(x5c)


def _workload_id(leaf: x509.Certificate) -> SpiffeId:
    """The leaf's SPIFFE ID, after the X.509-SVID leaf rules (SPIFFE X.509-SVID §4.1, §4.3, §5.1)."""
    names = _extension(leaf, x509.SubjectAlternativeName)
    uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names is not None else []
    if len(uris) != 1:
        raise refused("bad_svid")
    try:
        spiffe_id = SpiffeId.parse(uris[0])
    except InvalidRequest:
        raise refused("bad_svid") from None
    basic = _extension(leaf, x509.BasicConstraints)
    if basic is not None and basic.ca:
        raise refused("svid_is_ca")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise refused("bad_key_usage")
    return spiffe_id


def _extension(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    """The certificate's extension of `kind`, None when absent; a malformed extension block is `bad_svid`."""
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise refused("bad_svid") from None


def _authorities(source: KeySetCache[TrustBundle], top: x509.Certificate) -> tuple[x509.Certificate, ...]:
    """The trust domain's X.509 authorities, once one of them is named as the issuer of the chain's top."""
    bundle = source.current()
    if not bundle.is_revoked and not _names_an_authority(bundle, top):
        bundle = source.refresh_now()  # the trust domain may have rotated its CA since the last refresh
    if bundle.is_revoked:
        raise refused("bundle_revoked")
    if not bundle.x509_authorities:
        raise refused("no_x509_authorities")
    if not _names_an_authority(bundle, top):
        raise refused("untrusted_chain")
    return bundle.x509_authorities


def _names_an_authority(bundle: TrustBundle, top: x509.Certificate) -> bool:
    return any(top.issuer == authority.subject for authority in bundle.x509_authorities)


@dataclass(frozen=True, slots=True)
class _Validated:
    svid: _Svid
    authorities: tuple[x509.Certificate, ...]  # compared by identity: the exact set the chain was validated to
    valid_from: dt.datetime  # the latest notBefore on the path that was built
    valid_until: dt.datetime  # the earliest notAfter on that path


class ValidatedChains:
    """Chains that passed path validation, each kept while it would pass again; at most `size`, least recent out.

    A hit needs the same `x5c` entries (the exact bytes presented), the same authorities object (a bundle
    refresh, a rotation or a revocation makes another one, so the chain is validated afresh against it) and a
    time within every certificate's validity on the path built. Only chains that validated are kept, with
    their parse, so a forged chain costs its full parse and validation every time, as before, and cannot push
    a workload's chain out. Thread-safe: attestation runs on the event loop, the check in the batch's thread.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise InvalidRequest("the validated-chain cache size cannot be negative", field="validated_chains")
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, ...], _Validated] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def parsed(self, x5c: tuple[str, ...]) -> _Svid | None:
        """The parse of `x5c` when it validated before (it is the same whatever the time or the bundle)."""
        with self._lock:
            kept = self._entries.get(x5c)
        return None if kept is None else kept.svid

    def validate(self, svid: _Svid, authorities: tuple[x509.Certificate, ...], now: dt.datetime) -> None:
        """Pass when the chain of `svid` is valid to `authorities` at `now`; refuse `untrusted_chain`."""
        with self._lock:
            kept = self._entries.get(svid.x5c)
            if kept is not None:
                self._entries.move_to_end(svid.x5c)
        if kept is not None and kept.authorities is authorities and kept.valid_from <= now <= kept.valid_until:
            return
        path = _validate_path(svid.chain, authorities, now)
        if self._size == 0:
            return
        validated = _Validated(
            svid,
            authorities,
            valid_from=max(certificate.not_valid_before_utc for certificate in path),
            valid_until=min(certificate.not_valid_after_utc for certificate in path),
        )
        with self._lock:
            self._entries[svid.x5c] = validated
            self._entries.move_to_end(svid.x5c)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def _validate_path(
    chain: Sequence[x509.Certificate], authorities: tuple[x509.Certificate, ...], now: dt.datetime
) -> list[x509.Certificate]:
    """RFC 5280 path validation of `chain` to one of `authorities` (this trust domain's alone) at `now`.

    Returns the path built, leaf first and the authority last.
    """
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(authorities)))
            .time(now)
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        return verifier.verify(chain[0], list(chain[1:])).chain
    except (verification.VerificationError, ValueError):
        raise refused("untrusted_chain") from None
