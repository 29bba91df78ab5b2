"""What an agent imports: a typed client for the Remit API; depends on httpx, pydantic and remit.wire only."""

from remit.sdk.client import DEFAULT_SERVER, RemitClient, paginate
from remit.sdk.dpop import DPOP_EXTRA, DpopKey
from remit.sdk.evidence import EvidenceSource, JwtSvidFile, OidcTokenFile, SpiffeWorkloadApi
from remit.sdk.task import TaskSession

__all__ = [
    "DEFAULT_SERVER",
    "DPOP_EXTRA",
    "DpopKey",
    "EvidenceSource",
    "JwtSvidFile",
    "OidcTokenFile",
    "RemitClient",
    "SpiffeWorkloadApi",
    "TaskSession",
    "paginate",
]
