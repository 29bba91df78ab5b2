"""Test helpers: real keys and real signatures for JWT-SVIDs, OIDC tokens, DPoP proofs and forged tokens."""

from __future__ import annotations

import base64
import json
import threading

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
