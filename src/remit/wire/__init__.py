"""The v1 HTTP contract (pydantic models): shared by the server and the agent SDK, never by the core."""
