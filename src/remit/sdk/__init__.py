"""What an agent imports: a typed client for the Remit API; depends on httpx, pydantic and remit.wire only."""
