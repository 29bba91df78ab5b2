"""First-run seeding of the default policy pack: every file added and activated, a bad file skipped and reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import sqlite_settings
from tests.policy_requests import policy_request

from remit.bootstrap import Remit, build, upgrade_database
from remit.cli.commands.server import _seed_policies
from remit.cli.output import Printer

PACK = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def remit(tmp_path: Path) -> Iterator[Remit]:
    settings = sqlite_settings(tmp_path, "remit_op_test_seed")
    upgrade_database(settings)
    remit = build(settings)
    yield remit
    remit.close()


def test_the_pack_is_added_activated_and_loaded(remit: Remit, capsys: pytest.CaptureFixture[str]) -> None:
    """Each file becomes policy `<file stem>@1`, active, and this process's engine decides with the set at once."""
    _seed_policies(remit, PACK, Printer())

    active = remit.policies.active_set()
    names = sorted(p.stem for p in PACK.glob("*.cedar"))
    assert sorted(v.name for v in active.versions) == names
    assert {v.version for v in active.versions} == {1}
    assert remit.policy_engine.version == active.generation == len(names)
    assert remit.policy_engine.evaluate(policy_request()).allowed
    assert "activated the default policy pack" in capsys.readouterr().err


def test_a_file_that_does_not_validate_is_skipped(
    remit: Remit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken file is reported with Cedar's message; the good ones still load."""
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "good.cedar").write_text('@id("all") permit (principal, action, resource);', encoding="utf-8")
    (pack / "bad.cedar").write_text("forbid (principal, action, resource) when { principal.nope };", encoding="utf-8")

    _seed_policies(remit, pack, Printer())

    err = capsys.readouterr().err
    assert remit.policies.active_set().refs == ("good@1",)
    assert "default policy bad.cedar not loaded" in err
    assert "nope" in err


def test_a_missing_directory_is_reported(remit: Remit, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No pack, no policies: the server says so and starts (every decision will be a deny)."""
    _seed_policies(remit, tmp_path / "absent", Printer())

    assert remit.policies.active_set().version is None
    assert "no default policies" in capsys.readouterr().err
