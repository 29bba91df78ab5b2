"""What an agent imports: a typed client for the Remit API; depends on httpx, pydantic and remit.wire only."""

from remit.sdk.client import DEFAULT_SERVER, RemitClient, paginate

__all__ = ["DEFAULT_SERVER", "RemitClient", "paginate"]
