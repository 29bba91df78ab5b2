"""Settings: environment, YAML file, validation at start-up, and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from pydantic import SecretStr, ValidationError

from remit.settings import Settings


def test_cli_server_url_does_not_break_the_server_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """REMIT_SERVER is the CLI's server URL; the server's own section still reads REMIT_SERVER__*."""
    monkeypatch.setenv("REMIT_SERVER", "http://127.0.0.1:8700")
    monkeypatch.setenv("REMIT_SERVER__PORT", "8711")
    assert Settings().server.port == 8711


def test_yaml_file_named_by_remit_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A YAML file configures nested sections such as trust bundles; the environment wins over it."""
    config = tmp_path / "remit.yaml"
    config.write_text(
        "issuer: https://remit.example\n"
        "attestation:\n  spiffe_bundles:\n    - {trust_domain: acme.example, bundle: /etc/remit/acme.json}\n"
        "credentials:\n  write_max_seconds: 600\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("REMIT_CONFIG", str(config))
    monkeypatch.setenv("REMIT_ISSUER", "https://override.example")

    settings = Settings()

    assert settings.issuer_url == "https://override.example"
    assert settings.attestation.spiffe_bundles[0].trust_domain == "acme.example"
    assert settings.credentials.write_max_seconds == 600


def test_bad_values_fail_at_start_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match=r"store\.url must be"):
        Settings(store={"url": "mysql://x"})
    with pytest.raises(ValidationError, match="read_max_seconds"):
        Settings(credentials={"read_max_seconds": 7200, "max_task_duration_seconds": 3600})


def test_redacted_hides_secrets() -> None:
    settings = Settings(
        operator_token=SecretStr("remit_op_secret"),
        keys={"kek": "A" * 44},
        store={"url": "postgresql+psycopg://remit:hunter2@db/remit"},
    )
    shown = str(settings.redacted())
    assert "remit_op_secret" not in shown
    assert "A" * 44 not in shown
    assert "hunter2" not in shown


def test_policy_engine_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """REMIT_POLICY__* sets how often replicas check for a new policy set and how many entity sets they keep."""
    monkeypatch.setenv("REMIT_POLICY__RELOAD_POLL_SECONDS", "0.25")
    monkeypatch.setenv("REMIT_POLICY__ENTITY_CACHE_SIZE", "128")

    settings = Settings()

    assert (settings.policy.reload_poll_seconds, settings.policy.entity_cache_size) == (0.25, 128)
    with pytest.raises(ValidationError, match="reload_poll_seconds"):
        Settings(policy={"reload_poll_seconds": 0})
