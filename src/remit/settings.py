"""Settings: the only reader of REMIT_* variables; validated once at start-up, then handed out as plain values."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = [
    "ApprovalRuleSettings",
    "ApprovalSettings",
    "AttestationSettings",
    "CredentialSettings",
    "DecisionSettings",
    "KeySettings",
    "OidcIssuerSettings",
    "PolicySettings",
    "ServerSettings",
    "Settings",
    "SpiffeBundleSettings",
    "StoreSettings",
    "WebhookSettings",
]

DEFAULT_HOME = Path(".remit")


class StoreSettings(BaseModel):
    """Where state lives: SQLite file by default, PostgreSQL for several replicas."""

    url: str = Field(default="", description="sqlite:///path or postgresql+psycopg://…; empty means <home>/remit.db")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL: every commit survives power loss; NORMAL: survives a process crash only"
    )

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


class KeySettings(BaseModel):
    """The signing key ring: private keys sealed with AES-GCM under the key-encryption key (KEK)."""

    directory: Path | None = Field(default=None, description="key ring directory; empty means <home>/keys")
    kek: SecretStr | None = Field(default=None, description="base64 of 32 random bytes; wins over kek_file")
    kek_file: Path | None = Field(default=None, description="file holding the KEK; empty means <home>/kek")
    algorithm: Literal["ES256", "EdDSA"] = "ES256"


class SpiffeBundleSettings(BaseModel):
    """One trust domain's SPIFFE bundle: a file path or an https URL."""

    trust_domain: str
    bundle: str


class OidcIssuerSettings(BaseModel):
    """One trusted OIDC issuer of workload tokens."""

    issuer: str
    jwks: str = Field(description="file path or https URL of the issuer's JWK Set")
    audience: str
    bound_claims: dict[str, str | int | bool] = Field(default_factory=dict)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])


class AttestationSettings(BaseModel):
    """How workloads prove who they are."""

    audience: str = Field(default="", description="the audience evidence must name; empty means the issuer URL")
    spiffe_bundles: list[SpiffeBundleSettings] = Field(default_factory=list)
    oidc_issuers: list[OidcIssuerSettings] = Field(default_factory=list)
    max_evidence_lifetime_seconds: int = Field(default=600, ge=10, le=86_400)
    allow_http_loopback: bool = Field(default=False, description="tests only: accept http:// JWKS on loopback")


class CredentialSettings(BaseModel):
    """Lifetimes and shapes of task credentials (C08, C13); defaults follow the risk tiers."""

    read_max_seconds: int = Field(default=3600, ge=30, le=86_400)
    write_max_seconds: int = Field(default=900, ge=30, le=86_400)
    deploy_max_seconds: int = Field(default=900, ge=30, le=86_400)
    payment_max_seconds: int = Field(default=300, ge=30, le=86_400)
    export_max_seconds: int = Field(default=300, ge=30, le=86_400)
    admin_max_seconds: int = Field(default=300, ge=30, le=86_400)
    max_task_duration_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86_400)
    max_delegation_depth: int = Field(default=2, ge=0, le=5)
    gateway_audiences: list[str] = Field(default_factory=list)
    revocation_poll_seconds: float = Field(default=0.5, ge=0.05, le=30)


class DecisionSettings(BaseModel):
    """The per-call decision path (C14, C20)."""

    out_of_objective_threshold: int = Field(
        default=3, ge=1, le=100, description="out-of-objective requests after which a task is revoked (C20)"
    )
    facts_ttl_seconds: float = Field(
        default=2.0, ge=0.0, le=60, description="how long registry facts are cached on the decision path"
    )


class PolicySettings(BaseModel):
    """The Cedar policy engine: how often a replica checks for a new policy set, how many entity sets it keeps."""

    reload_poll_seconds: float = Field(default=1.0, ge=0.05, le=60)
    entity_cache_size: int = Field(default=4096, ge=16, le=1_000_000)


_RiskClassName = Literal["read", "write", "deploy", "payment", "export", "admin"]


class ApprovalRuleSettings(BaseModel):
    """Who approves calls of a risk class in a business function; `required` empty takes the risk tier's default."""

    function: str = Field(default="*", description="business function name or id; * for any")
    risk_class: Literal["*", "read", "write", "deploy", "payment", "export", "admin"] = "*"
    approvers: list[str] = Field(
        default_factory=lambda: ["owner", "approvers"], min_length=1, description="`owner` and/or group names"
    )
    required: int | None = Field(default=None, ge=1, le=5, description="distinct approvals needed")


class WebhookSettings(BaseModel):
    """Where an approver group is told about requests and alerts: JSON, HMAC-SHA256 signed with `secret`."""

    group: str = Field(pattern=r"^[a-z0-9][a-z0-9._@-]{0,62}$")
    url: str = Field(pattern=r"^https?://", max_length=2048)
    secret: SecretStr


class ApprovalSettings(BaseModel):
    """Step-up approvals, elevations and break-glass (C16-C19, C30); defaults follow the risk tiers."""

    rules: list[ApprovalRuleSettings] = Field(default_factory=list)
    default_approvers: list[str] = Field(default_factory=lambda: ["owner", "approvers"], min_length=1)
    two_approver_classes: list[_RiskClassName] = Field(
        default_factory=lambda: list[_RiskClassName](["payment", "export", "admin"]),
        description="risk classes that need two distinct approvers unless a rule says otherwise",
    )
    request_timeout_seconds: int = Field(default=900, ge=30, le=86_400)
    elevation_ttl_seconds: int = Field(default=300, ge=10, le=900, description="at most 15 minutes")
    elevation_uses: int = Field(default=1, ge=0, le=100, description="0: any number of uses within the TTL")
    breakglass_ttl_seconds: int = Field(default=600, ge=30, le=900)
    breakglass_alert_groups: list[str] = Field(default_factory=lambda: ["security"])
    max_wait_seconds: float = Field(default=30.0, ge=0, le=120, description="longest long-poll of an approval")
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0.0, le=300)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class _EnvSource(EnvSettingsSource):
    """REMIT_* variables, except that a plain-URL REMIT_SERVER (the CLI's "which server") is not our section."""

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:  # noqa: ANN401 - pydantic-settings' signature
        if field_name == "server" and isinstance(value, str) and not value.lstrip().startswith("{"):
            value = None  # build the section from REMIT_SERVER__* alone
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class Settings(BaseSettings):
    """Everything configurable, from the environment (REMIT_*, nested with __) or keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="REMIT_", env_nested_delimiter="__", extra="ignore")

    home: Path = DEFAULT_HOME
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    operator_token: SecretStr | None = None
    operator_token_file: Path | None = None
    operator_name: str = Field(default="operator", pattern=r"^[a-z0-9][a-z0-9._@-]{0,62}$")
    issuer: str = Field(default="", description="the `iss` of every credential; empty means the public URL")
    keys: KeySettings = KeySettings()
    attestation: AttestationSettings = AttestationSettings()
    credentials: CredentialSettings = CredentialSettings()
    decisions: DecisionSettings = DecisionSettings()
    policy: PolicySettings = PolicySettings()
    approvals: ApprovalSettings = ApprovalSettings()
    audit_hmac_key_file: Path | None = Field(default=None, description="empty means <home>/audit-hmac-key")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files: configuration is explicit
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then REMIT_* variables, then the YAML file named by REMIT_CONFIG (if any)."""
        del env_settings  # replaced by _EnvSource, which knows REMIT_SERVER belongs to the CLI
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        config = os.environ.get("REMIT_CONFIG")
        if config:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(config)))
        return (*sources, file_secret_settings)

    @field_validator("server", mode="before")
    @classmethod
    def _not_the_cli_server_url(cls, value: object) -> object:
        # REMIT_SERVER is the CLI's "which server to talk to" URL; it is not this listener section.
        return ServerSettings() if value is None or isinstance(value, str) else value

    @model_validator(mode="after")
    def _credential_bounds(self) -> Settings:
        limits = self.credentials
        if limits.read_max_seconds > limits.max_task_duration_seconds:
            msg = "credentials.read_max_seconds must be ≤ credentials.max_task_duration_seconds"
            raise ValueError(msg)
        return self

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.home / 'remit.db').as_posix()}"

    @property
    def token_file(self) -> Path:
        return self.operator_token_file or self.home / "operator-token"

    @property
    def public_url(self) -> str:
        return self.server.public_url or f"http://{self.server.host}:{self.server.port}"

    @property
    def issuer_url(self) -> str:
        return (self.issuer or self.public_url).rstrip("/")

    @property
    def evidence_audience(self) -> str:
        return self.attestation.audience or self.issuer_url

    @property
    def keys_directory(self) -> Path:
        return self.keys.directory or self.home / "keys"

    @property
    def kek_path(self) -> Path:
        return self.keys.kek_file or self.home / "kek"

    @property
    def audit_hmac_key_path(self) -> Path:
        return self.audit_hmac_key_file or self.home / "audit-hmac-key"

    def redacted(self) -> dict[str, object]:
        """The resolved configuration with secrets hidden, for `remit config show`."""
        shown = self.model_dump(mode="json")
        shown["operator_token"] = "**********" if self.operator_token else None
        shown["keys"]["kek"] = "**********" if self.keys.kek else None
        shown["store"]["url"] = _hide_password(self.store_url)
        return shown


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
