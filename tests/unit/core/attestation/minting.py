"""Test helpers: real keys and real signatures for JWT-SVIDs, OIDC tokens, DPoP proofs and forged tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

Key = ECKey | OKPKey | RSAKey
AnyKey = Key | OctKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Mapping[str, Any] | str | bytes) -> str:
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, str):
        return b64(value.encode())
    return b64(json.dumps(value, separators=(",", ":")).encode())


def sign(header: Mapping[str, Any], claims: Mapping[str, Any], key: AnyKey) -> str:
    """Sign with joserfc's algorithm implementation for header['alg'] (any alg, for forging tests too)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = JWSRegistry.algorithms[header["alg"]].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


def sign_with_joserfc(header: dict[str, Any], claims: Mapping[str, Any], key: Key) -> str:
    """Sign through joserfc's public JWS API (used for the positive paths)."""
    payload = json.dumps(claims).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


def ec_key(curve: str = "P-256") -> ECKey:
    return ECKey.generate_key(curve)


def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def public_jwk(key: Key, **extra: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), **extra}


def write_json(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


class DocumentServer:
    """A real HTTP server on 127.0.0.1 serving one mutable JSON document and counting requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - stdlib signature, silenced
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/bundle.json"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def serving(document: Mapping[str, Any]) -> Iterator[DocumentServer]:
    server = DocumentServer()
    server.document = dict(document)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- X.509-SVIDs (SPIFFE X.509-SVID spec)


def _usage(*, signature: bool, cert_sign: bool) -> x509.KeyUsage:

    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names(spiffe_id: str, uris: list[str] | None) -> list[x509.GeneralName]:
    """The leaf's SANs: `spiffe_id`, or the given URIs; no URIs at all means a DNS name alone."""
    chosen = [spiffe_id] if uris is None else uris
    return [x509.UniformResourceIdentifier(u) for u in chosen] or [x509.DNSName("bot.acme.example")]


class SpiffeCa:
    """A trust domain's X.509 authority (a self-signed root, as SPIRE's own CA) that issues X.509-SVIDs."""

    def __init__(
        self,
        domain: str = "acme.example",
        *,
        now: dt.datetime,
        issuer: SpiffeCa | None = None,
        name: x509.Name | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=30),
    ) -> None:
        """A new key; `name` another CA's subject (a successor or a forger), `lifetime` from `now`."""
        self.domain = domain
        self.now = now
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{domain} CA {id(self)}")])
        signer = issuer.key if issuer is not None else self.key
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(issuer.name if issuer is not None else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(signature=False, cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{domain}")]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
        self.certificate = builder.sign(signer, hashes.SHA256())
        self.chain_above: list[x509.Certificate] = [] if issuer is None else [self.certificate, *issuer.chain_above]

    def bundle_entry(self) -> dict[str, Any]:
        """The authority as a SPIFFE bundle entry (`use: x509-svid`, the CA certificate alone in `x5c`)."""
        public = ECKey.import_key(self.key.public_key()).as_dict(private=False)
        der = self.certificate.public_bytes(Encoding.DER)
        return {**public, "use": "x509-svid", "x5c": [base64.b64encode(der).decode("ascii")]}

    def issue(
        self,
        spiffe_id: str,
        *,
        uris: list[str] | None = None,
        ca: bool = False,
        usage: x509.KeyUsage | None = None,
        key_usage: bool = True,
        authority_key_id: bool = True,
        extended_usages: list[x509.ObjectIdentifier] | None = None,
        lifetime: dt.timedelta | None = None,
        not_before: dt.datetime | None = None,
        key: Any = None,
    ) -> tuple[x509.Certificate, Any]:
        """An X.509-SVID for `spiffe_id`: (certificate, private key). The knobs make it break one rule."""
        private = key or ec.generate_private_key(ec.SECP256R1())
        start = not_before or self.now - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + (lifetime or dt.timedelta(hours=1)))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_names(spiffe_id, uris)), critical=True)
        )
        if extended_usages is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usages), critical=False)
        if authority_key_id:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        if key_usage:
            builder = builder.add_extension(usage or _usage(signature=True, cert_sign=False), critical=True)
        return builder.sign(self.key, hashes.SHA256()), private

    def chain(self, leaf: x509.Certificate) -> list[x509.Certificate]:
        """`leaf` and the intermediates above it (not the root: the bundle holds that)."""
        return [leaf, *self.chain_above]


def x5c(chain: list[x509.Certificate]) -> list[str]:

    return [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii") for certificate in chain]


def x509_assertion(
    chain: list[x509.Certificate],
    private_key: Any,
    *,
    audience: str,
    now: int,
    alg: str = "ES256",
    header: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An X.509-SVID assertion: claims about the leaf's SPIFFE ID, signed with `private_key`, the chain in `x5c`."""
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    spiffe_id = uris[0] if uris else "spiffe://acme.example/none"
    body: dict[str, Any] = {
        "iss": spiffe_id,
        "sub": spiffe_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_hex(8),
    }
    body.update(claims)
    jose_key = RSAKey.import_key(private_key) if alg.startswith(("RS", "PS")) else ECKey.import_key(private_key)
    return sign({"alg": alg, "typ": "JWT", "x5c": x5c(chain), **(header or {})}, body, jose_key)
