"""What an agent imports: a typed client for the Remit API; depends on httpx, pydantic and remit.wire only."""

from remit.sdk.client import DEFAULT_SERVER, RemitClient, paginate
from remit.sdk.dpop import DPOP_EXTRA, DpopKey
from remit.sdk.evidence import (
    EvidenceSource,
    JwtSvidFile,
    OidcTokenFile,
    SpiffeWorkloadApi,
    SpiffeX509Source,
    SpiffeX509WorkloadApi,
    X509SvidFiles,
)
from remit.sdk.task import TaskSession
from remit.sdk.x509_svid import X509_EXTRA

__all__ = [
    "DEFAULT_SERVER",
    "DPOP_EXTRA",
    "X509_EXTRA",
    "DpopKey",
    "EvidenceSource",
    "JwtSvidFile",
    "OidcTokenFile",
    "RemitClient",
    "SpiffeWorkloadApi",
    "SpiffeX509Source",
    "SpiffeX509WorkloadApi",
    "TaskSession",
    "X509SvidFiles",
    "paginate",
]
