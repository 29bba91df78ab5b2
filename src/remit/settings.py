"""Settings: the only reader of REMIT_* variables; validated once at start-up, then handed out as plain values."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServerSettings", "Settings", "StoreSettings"]

DEFAULT_HOME = Path(".remit")


class StoreSettings(BaseModel):
    """Where state lives: SQLite file by default, PostgreSQL for several replicas."""

    url: str = Field(default="", description="sqlite:///path or postgresql+psycopg://…; empty means <home>/remit.db")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            msg = "store.url must be sqlite:///… or postgresql+psycopg://…"
            raise ValueError(msg)
        return (
            value.replace("postgresql://", "postgresql+psycopg://", 1) if value.startswith("postgresql://") else value
        )


class ServerSettings(BaseModel):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    public_url: str = Field(default="", description="the URL clients use; defaults to http://host:port")


class Settings(BaseSettings):
    """Everything configurable, from the environment (REMIT_*, nested with __) or keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="REMIT_", env_nested_delimiter="__", extra="ignore")

    home: Path = DEFAULT_HOME
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    operator_token: SecretStr | None = None
    operator_token_file: Path | None = None
    operator_name: str = Field(default="operator", pattern=r"^[a-z0-9][a-z0-9._@-]{0,62}$")

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.home / 'remit.db').as_posix()}"

    @property
    def token_file(self) -> Path:
        return self.operator_token_file or self.home / "operator-token"

    @property
    def public_url(self) -> str:
        return self.server.public_url or f"http://{self.server.host}:{self.server.port}"

    def redacted(self) -> dict[str, object]:
        """The resolved configuration with secrets hidden, for `remit config show`."""
        shown = self.model_dump(mode="json")
        shown["operator_token"] = "**********" if self.operator_token else None
        shown["store"]["url"] = _hide_password(self.store_url)
        return shown


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
